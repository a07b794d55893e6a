/**
 * The consumer-facing pay page behind a precreated trade's QR code. The consumer enters the
 * payment code their wallet shows (in the sandbox: one minted for a test consumer), and pays
 * from their wallet. No console login: the code itself is the consumer's one-time secret.
 */
import { isAppError } from '../../errors.js'
import { formatYuan, fen } from '../../platform/money/money.js'
import { html, page } from '../../server/html.js'
import type { CapabilityContext, PageResult, PageSpec } from '../contract.js'
import type { TradesTable } from './tables.js'
import type { TradeService } from './trades.js'

const statusText: Readonly<Record<TradesTable['status'], string>> = {
  wait_buyer_pay: '待支付 Waiting for payment',
  paid: '支付成功 Paid',
  closed: '交易已关闭 Closed',
  fully_refunded: '已全额退款 Refunded',
}

export function pages(trades: TradeService, context: CapabilityContext): PageSpec[] {
  async function render(
    trade: TradesTable,
    merchantName: string,
    message: { ok: boolean; text: string } | null,
    status = 200,
  ): Promise<PageResult> {
    const form =
      trade.status === 'wait_buyer_pay'
        ? html` <form method="post">
            <label for="code">付款码 Payment code</label>
            <input id="code" name="code" inputmode="numeric" autocomplete="off" required maxlength="64" />
            <button type="submit">确认支付 Pay ¥${formatYuan(fen(trade.total_amount))}</button>
          </form>`
        : html``
    const notice = message === null ? html`` : html`<p class="${message.ok ? 'ok' : 'error'}">${message.text}</p>`
    return {
      kind: 'html',
      status,
      html: page({
        title: `支付 Pay · ${merchantName}`,
        body: html` <h1>${merchantName}</h1>
          <p class="muted">${trade.subject}</p>
          <p class="amount">¥${formatYuan(fen(trade.total_amount))}</p>
          <p>${statusText[trade.status]}${trade.environment === 'sandbox' ? ' · 沙箱 Sandbox' : ''}</p>
          ${notice}${form}`,
      }),
    }
  }

  async function merchantName(db: Parameters<PageSpec['handler']>[0]['db'], trade: TradesTable) {
    return (await context.directory.organization(db, trade.merchant_id))?.name ?? trade.merchant_id
  }

  const notFound: PageResult = {
    kind: 'html',
    status: 404,
    html: page({ title: '未找到 Not found', body: html`<h1>未找到该交易 No such payment</h1>` }),
  }

  return [
    {
      method: 'GET',
      url: '/pay/:token',
      handler: async ({ db, params, now }) => {
        const found = await trades.findByQrToken(db, params.token ?? '')
        if (found === null) return notFound
        // A trade that time and the channel have not moved is shown as read, without a lock.
        const stale =
          found.status === 'wait_buyer_pay' &&
          (found.expires_at <= now || found.channel_state === 'pending' || found.channel_state === 'unknown')
        if (!stale) return render(found, await merchantName(db, found), null)
        // Otherwise under the row lock, like every other transition: expiry decided here must
        // not race a payment committing at the same moment.
        const trade = await db.transaction().execute(async (tx) => {
          const locked = await trades.lockByQrToken(tx, found.qr_token!, now)
          return locked === null ? found : trades.refresh(tx, locked, now)
        })
        return render(trade, await merchantName(db, trade), null)
      },
    },
    {
      method: 'POST',
      url: '/pay/:token',
      handler: async ({ db, params, form, now }) => {
        const found = await trades.findByQrToken(db, params.token ?? '')
        if (found === null) return notFound
        try {
          const paid = await db
            .transaction()
            .execute((tx) => trades.payOnPage(tx, found.qr_token!, form.code ?? '', now))
          return render(paid, await merchantName(db, paid), {
            ok: true,
            text: '支付成功，谢谢 Payment received, thank you',
          })
        } catch (error) {
          if (!isAppError(error)) throw error
          const current = (await trades.findByQrToken(db, found.qr_token!)) ?? found
          return render(
            current,
            await merchantName(db, current),
            { ok: false, text: `${error.message} (${error.code})` },
            error.status,
          )
        }
      },
    },
  ]
}
