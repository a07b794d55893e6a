/**
 * The events of merchant authorisation. Authorisation is a platform service, not a
 * capability, so it is not in the registry; it declares its event types here and publishes
 * them through the same outbox (same table, same schema check) with a publisher of its own.
 * The notifications module can merge {@link authorizationEvents} into its catalogue.
 *
 * @example
 * for (const [type, schema] of Object.entries(authorizationEvents)) catalogue.set(type, schema)
 */
import type { TSchema } from '@sinclair/typebox'
import { createEventPublisher, type EventPublisher } from '../events/outbox.js'
import { ApprovalEvent, AuthorizationEvent } from './schema.js'

export const authorizationEvents = Object.freeze({
  /** A merchant user approved on the consent page; the app received a code. */
  'authorization.approved': ApprovalEvent,
  /** The authorisation is live with these scopes: a code was exchanged, or a sandbox grant. */
  'authorization.granted': AuthorizationEvent,
  /** The app rotated its tokens with its refresh token. */
  'authorization.refreshed': AuthorizationEvent,
  /** The merchant revoked it, or its code was replayed; its tokens no longer work. */
  'authorization.revoked': AuthorizationEvent,
} satisfies Record<string, TSchema>)

export type AuthorizationEventType = keyof typeof authorizationEvents

/** Checks payloads against {@link authorizationEvents} and writes them to the outbox. */
export const authorizationEventPublisher: EventPublisher = createEventPublisher(
  new Map(Object.entries(authorizationEvents)),
)
