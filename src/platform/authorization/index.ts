/**
 * Merchant authorisation of ISV apps (三方应用授权): the public surface of the module.
 *
 * - {@link authorizationRoutes}: the JSON routes (ISV console, token endpoint, merchant console);
 * - {@link authorizationPages}: the consent pages, a Fastify plugin;
 * - {@link authorizationTokenResolver}: turns an app auth token into what it grants;
 * - {@link grantAuthorization}: a sandbox grant without the consent page;
 * - {@link authorizationEvents}: the event types it emits, with their payload schemas.
 *
 * @example
 * const grant = await grantAuthorization(db, { appId, merchantId, scopes: ['stores:read'] }, Date.now())
 */
export { authorizationEvents, type AuthorizationEventType } from './events.js'
export { authorizationPages, type AuthorizationPagesOptions } from './pages.js'
export { redirectUriProblem } from './redirect-uris.js'
export { authorizationRoutes } from './routes.js'
export type { AuthorizationView, TokenGrantView } from './schema.js'
export {
  appAuthTokenTtlS,
  authorizationTokenResolver,
  codeTtlS,
  grantAuthorization,
  purgeAuthorizationCodes,
  refreshTokenTtlS,
  type DirectGrant,
} from './service.js'
