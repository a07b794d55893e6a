/**
 * Minimal server-rendered pages (the consumer's pay page, the merchant's consent page):
 * escaped by construction, no scripts, bilingual with Simplified Chinese first.
 *
 * @example
 * page({ title: '支付 Pay', body: html`<p>${userText}</p>` })
 */
export interface SafeHtml {
  readonly __html: string
}

const escapes: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => escapes[char]!)
}

/** A tagged template that escapes every interpolated value unless it is already SafeHtml. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? ''
  values.forEach((value, index) => {
    const items = Array.isArray(value) ? value : [value]
    for (const item of items) {
      out +=
        typeof item === 'object' && item !== null && '__html' in item
          ? (item as SafeHtml).__html
          : escapeHtml(String(item ?? ''))
    }
    out += strings[index + 1] ?? ''
  })
  return { __html: out }
}

export function page(input: { title: string; body: SafeHtml }): string {
  return html`<!doctype html>
    <html lang="zh-CN">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${input.title}</title>
        <style>
          body {
            font-family:
              system-ui,
              -apple-system,
              'PingFang SC',
              'Microsoft YaHei',
              sans-serif;
            max-width: 28rem;
            margin: 2rem auto;
            padding: 0 1rem;
            color: #1f1f1f;
          }
          h1 {
            font-size: 1.3rem;
          }
          .amount {
            font-size: 2rem;
            font-weight: 600;
          }
          .muted {
            color: #666;
          }
          .error {
            color: #b00020;
          }
          .ok {
            color: #0a7d27;
          }
          input,
          button {
            font-size: 1rem;
            padding: 0.5rem;
            width: 100%;
            box-sizing: border-box;
            margin: 0.25rem 0;
          }
          button {
            background: #1677ff;
            color: #fff;
            border: 0;
            border-radius: 6px;
          }
        </style>
      </head>
      <body>
        ${input.body}
      </body>
    </html>`.__html
}
