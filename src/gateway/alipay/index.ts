/**
 * The Alipay-compatible gateway: the Alipay OpenAPI protocol (v2 `/gateway.do` and v3
 * `/v3/...`, as the `alipay-sdk` v4 package speaks it) over the same capabilities as the
 * native API, so ISV code written for Alipay works against Baseplate by changing only the
 * endpoint and the keys. An adapter: it parses, verifies, maps and signs; the payment and
 * authorisation services do the work. See docs/guides/alipay-compatibility.md.
 *
 * - {@link registerAlipayGateway}: the routes, an encapsulated Fastify plugin;
 * - {@link alipayNotificationFormat}: Alipay-format notifications for the notification worker;
 * - {@link alipaySettingsRoutes}: the console routes of the app-level notify URL;
 * - {@link createRsaSigner}: RSA2 signing, inline or on a bounded pool of threads.
 *
 * @example
 * await registerAlipayGateway(app, { config, storage, payment, platformKeys, clock, resolver })
 * startNotificationWorker({ storage, platformKeys, formats: [alipayNotificationFormat({ … })] })
 */
export { registerAlipayGateway, type AlipayGatewayOptions } from './gateway.js'
export { alipayNotificationFormat, alipayRetryDelaysMs, alipayAttemptsMax } from './notify.js'
export { alipaySettingsRoutes, getAlipaySettings, setAlipaySettings } from './settings.js'
export { createRsaSigner, signInline, type RsaSigner } from './signer.js'
export { gatewayMethods } from './methods.js'
export { subCodes, gatewayCodes } from './errors.js'
