/**
 * The crypto ceiling of an RSA-signed protocol: RSA-2048 SHA256withRSA signatures per second
 * on one core (this thread), over a body the size of a gateway response.
 *
 * @example
 * const { perSecond } = rsaSignRate(1)
 */
import crypto from 'node:crypto'

export function rsaSignRate(seconds: number): { signatures: number; perSecond: number } {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  const body = Buffer.from(JSON.stringify({ code: '10000', msg: 'Success', out_trade_no: 'X'.repeat(32), n: 1 }))
  for (let i = 0; i < 50; i += 1) crypto.sign('sha256', body, privateKey)
  const started = performance.now()
  const deadline = started + seconds * 1000
  let signatures = 0
  while (performance.now() < deadline) {
    crypto.sign('sha256', body, privateKey)
    signatures += 1
  }
  return { signatures, perSecond: signatures / ((performance.now() - started) / 1000) }
}
