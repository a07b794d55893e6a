/**
 * TypeBox's `Value.Check` (used to assert event payloads and policy values) knows no string
 * formats until they are registered; requests are validated by Ajv with ajv-formats instead.
 * Registering the two formats the schemas use keeps both validators in agreement.
 */
import { FormatRegistry } from '@sinclair/typebox'

const dateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
const email = /^[^\s@]+@[^\s@]+$/

if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) => dateTime.test(value) && !Number.isNaN(Date.parse(value)))
}
if (!FormatRegistry.Has('email')) FormatRegistry.Set('email', (value) => email.test(value))
