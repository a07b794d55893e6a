/**
 * The consent pages' HTML: plain server-rendered forms with no script, so they work in any
 * browser and a strict Content-Security-Policy costs nothing. Every interpolated value goes
 * through {@link escapeHtml}; app and organisation names are chosen by strangers. Labels are
 * bilingual, Simplified Chinese first and English second.
 */
import crypto from 'node:crypto'
import { escapeHtml } from '../../server/html.js'
import type { CheckedRequest, MerchantChoice } from './consent.js'

const style = [
  'body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;background:#f5f5f5;margin:0;color:#1f1f1f}',
  'main{max-width:32rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;',
  'box-shadow:0 1px 3px rgba(0,0,0,.1)}',
  'h1{font-size:1.25rem;margin-top:0}.en{color:#666;font-size:.9em}',
  'label{display:block;margin:.75rem 0 .25rem}input[type=email],input[type=password]{width:100%;padding:.5rem;',
  'box-sizing:border-box}',
  'ul{padding-left:1.2rem}li{margin:.4rem 0}code{background:#f0f0f0;padding:0 .25rem}',
  '.actions{display:flex;gap:.75rem;margin-top:1.5rem}button{padding:.5rem 1.25rem;font-size:1rem;cursor:pointer}',
  'button.primary{background:#1677ff;color:#fff;border:0;border-radius:4px}.error{color:#cf1322}',
].join('')

/** The inline stylesheet is allowed by its hash, so the policy needs no 'unsafe-inline'. */
const styleHash = `'sha256-${crypto.createHash('sha256').update(style).digest('base64')}'`

/**
 * The Content-Security-Policy of a page. `formTarget` is the origin a form may end up at
 * (browsers apply form-action to the redirect that follows a submission).
 *
 * @example
 * contentSecurityPolicy('https://isv.example.com')
 */
export function contentSecurityPolicy(formTarget: string | null): string {
  return [
    "default-src 'none'",
    `style-src ${styleHash}`,
    `form-action 'self'${formTarget === null ? '' : ` ${formTarget}`}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ')
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body><main>
${body}
</main></body>
</html>
`
}

function label(zh: string, en: string): string {
  return `${escapeHtml(zh)} <span class="en">${escapeHtml(en)}</span>`
}

function hiddenFields(fields: Readonly<Record<string, string | null>>): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== null)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value!)}">`)
    .join('\n')
}

function requestFields(request: CheckedRequest): Record<string, string | null> {
  return {
    app_id: request.app.id,
    redirect_uri: request.redirectUri,
    scope: request.scopes.join(','),
    state: request.state,
  }
}

function appHeading(request: CheckedRequest): string {
  const sandbox = request.app.environment === 'sandbox' ? ` <span class="en">(沙箱 sandbox)</span>` : ''
  return `<p>${label('应用', 'App')}: <strong>${escapeHtml(request.app.name)}</strong>${sandbox}<br>
${label('服务商', 'Service provider')}: <strong>${escapeHtml(request.isv.name)}</strong></p>`
}

export interface LoginPage {
  readonly request: CheckedRequest
  readonly csrfToken: string
  readonly email: string
  /** Already escaped, from {@link errorMessageHtml}. */
  readonly errorHtml: string | null
}

/**
 * The login form, posting to /oauth/login with the request in hidden fields.
 *
 * @example
 * loginPage({ request: checked, csrfToken, email: '', errorHtml: null })
 */
export function loginPage(page: LoginPage): string {
  const error = page.errorHtml === null ? '' : `<p class="error" role="alert">${page.errorHtml}</p>`
  return layout(
    '登录以授权 Log in to authorise',
    `<h1>${label('登录以授权应用', 'Log in to authorise an app')}</h1>
${appHeading(page.request)}
${error}
<form method="post" action="/oauth/login">
${hiddenFields({ ...requestFields(page.request), csrf_token: page.csrfToken })}
<label for="email">${label('邮箱', 'Email')}</label>
<input id="email" name="email" type="email" autocomplete="username" required maxlength="254"
 value="${escapeHtml(page.email)}">
<label for="password">${label('密码', 'Password')}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="200">
<div class="actions"><button class="primary" type="submit">${label('登录', 'Log in')}</button></div>
</form>`,
  )
}

export interface ConsentPage {
  readonly request: CheckedRequest
  readonly merchants: readonly MerchantChoice[]
  readonly scopeDescriptions: ReadonlyMap<string, string>
  readonly email: string
  readonly csrfToken: string
  readonly switchAccountUrl: string
}

function merchantPicker(merchants: readonly MerchantChoice[]): string {
  if (merchants.length === 1) {
    const only = merchants[0]!
    return `<p>${label('商家', 'Merchant')}: <strong>${escapeHtml(only.name)}</strong></p>
<input type="hidden" name="merchant_id" value="${escapeHtml(only.id)}">`
  }
  const options = merchants
    .map(
      (merchant, index) =>
        `<label><input type="radio" name="merchant_id" value="${escapeHtml(
          merchant.id,
        )}"${index === 0 ? ' checked' : ''}> ${escapeHtml(merchant.name)}</label>`,
    )
    .join('\n')
  return `<fieldset><legend>${label('为哪个商家授权', 'Authorise for which merchant')}</legend>
${options}
</fieldset>`
}

/**
 * The consent form: app, service provider, each scope with its description, the merchant to
 * authorise for, Approve and Decline.
 *
 * @example
 * consentPage({ request: checked, merchants, scopeDescriptions: registry.scopes, email, csrfToken,
 *   switchAccountUrl })
 */
export function consentPage(page: ConsentPage): string {
  const scopes = page.request.scopes
    .map((scope) => `<li><code>${escapeHtml(scope)}</code> ${escapeHtml(page.scopeDescriptions.get(scope) ?? '')}</li>`)
    .join('\n')
  return layout(
    '授权应用 Authorise an app',
    `<h1>${label('授权应用访问您的商家数据', 'Authorise an app')}</h1>
${appHeading(page.request)}
<p>${label('该应用请求以下权限', 'The app asks to')}:</p>
<ul>
${scopes}
</ul>
<form method="post" action="/oauth/authorize">
${hiddenFields({ ...requestFields(page.request), csrf_token: page.csrfToken })}
${merchantPicker(page.merchants)}
<p class="en">${label('授权后，您可随时在商家后台撤销', 'You can revoke this at any time in the merchant console')}</p>
<div class="actions">
<button class="primary" type="submit" name="decision" value="approve">${label('同意授权', 'Approve')}</button>
<button type="submit" name="decision" value="decline">${label('拒绝', 'Decline')}</button>
</div>
</form>
<p class="en">${label('当前登录', 'Signed in as')} ${escapeHtml(page.email)} ·
<a href="${escapeHtml(page.switchAccountUrl)}">${label('切换账号', 'Use another account')}</a></p>`,
  )
}

const chineseMessages: Readonly<Record<string, string>> = {
  APP_NOT_FOUND: '应用不存在',
  AUTHZ_REQUEST_INVALID: '授权请求的参数有误',
  AUTHZ_REDIRECT_URI_NOT_REGISTERED: '回调地址（redirect_uri）未在该应用登记',
  AUTHZ_SCOPE_INVALID: '请求的授权范围（scope）无效',
  AUTHZ_MERCHANT_ROLE_REQUIRED: '只有商家组织的所有者或管理员才能授权应用',
  AUTHZ_CSRF_TOKEN_INVALID: '表单已失效或并非来自本页面，请重新打开授权链接',
  AUTH_SESSION_REQUIRED: '登录已失效，请重新登录',
  AUTH_INVALID_CREDENTIALS: '邮箱或密码错误',
  AUTH_LOGIN_THROTTLED: '登录失败次数过多，请稍后再试',
  REQUEST_BODY_TOO_LARGE: '提交的内容过大',
  REQUEST_UNSUPPORTED_MEDIA_TYPE: '请通过页面上的表单提交',
}

/**
 * A bilingual message for an error code: the Chinese text, then the English message.
 *
 * @example
 * errorMessageHtml('APP_NOT_FOUND', 'No such app')
 */
export function errorMessageHtml(code: string, message: string): string {
  return label(chineseMessages[code] ?? '出错了', message)
}

export interface ErrorPage {
  readonly code: string
  readonly message: string
  readonly requestId: string
  readonly switchAccountUrl: string | null
}

/**
 * An error page naming the code and the request id; it never links back to the app.
 *
 * @example
 * errorPage({ code: 'APP_NOT_FOUND', message: 'No such app', requestId, switchAccountUrl: null })
 */
export function errorPage(page: ErrorPage): string {
  const switchAccount =
    page.switchAccountUrl === null
      ? ''
      : `<p><a href="${escapeHtml(page.switchAccountUrl)}">${label('切换账号', 'Use another account')}</a></p>`
  return layout(
    '无法授权 Cannot authorise',
    `<h1>${label('无法完成授权', 'The app cannot be authorised')}</h1>
<p class="error" role="alert">${errorMessageHtml(page.code, page.message)}</p>
<p class="en">${label('错误码', 'Error code')}: <code>${escapeHtml(page.code)}</code> ·
${label('请求号', 'Request id')}: <code>${escapeHtml(page.requestId)}</code></p>
${switchAccount}
<p class="en">${label('请联系提供该链接的服务商', 'Tell the service provider that sent you this link')}</p>`,
  )
}
