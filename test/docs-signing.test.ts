/**
 * Keeps docs/api/signing.md honest. The worked example's blocks are marked with
 * `<!-- signing-example:NAME -->`; this test re-derives every derived value (signing strings,
 * signature, public key, headers) from the documented inputs with the code the platform runs,
 * and runs the documented Node script against a stub server that checks its signature. No
 * database is involved.
 */
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { signRequest } from '../sdk/src/index.js'
import { headerNames, requestSigningString, responseSigningString, signText, verifyText } from '../sdk/src/protocol.js'

const docPath = path.join(import.meta.dirname, '..', 'docs', 'api', 'signing.md')
const doc = fs.readFileSync(docPath, 'utf8')

/** The content of the fenced block that follows `<!-- signing-example:NAME -->`, without its fences. */
function block(name: string): string {
  const marker = `<!-- signing-example:${name} -->`
  const start = doc.indexOf(marker)
  if (start === -1) throw new Error(`docs/api/signing.md lacks ${marker}`)
  expect(doc.indexOf(marker, start + 1), `${marker} appears twice`).toBe(-1)
  const match = /^\s*```[^\n]*\n([\s\S]*?)\n```/.exec(doc.slice(start + marker.length))
  if (match === null) throw new Error(`${marker} is not followed by a fenced block`)
  return match[1]!
}

interface HttpMessage {
  readonly startLine: string
  /** Lower-cased header names. */
  readonly headers: ReadonlyMap<string, string>
  readonly body: string
}

function parseHttp(text: string): HttpMessage {
  const [head, ...rest] = text.split('\n\n')
  const [startLine, ...headerLines] = head!.split('\n')
  const headers = new Map<string, string>()
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    expect(colon, `header line "${line}"`).toBeGreaterThan(0)
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { startLine: startLine!, headers, body: rest.join('\n\n') }
}

function required(message: HttpMessage, name: string): string {
  const value = message.headers.get(name)
  if (value === undefined) throw new Error(`the documented message lacks the ${name} header`)
  return value
}

const privateKey = crypto.createPrivateKey(block('private-key'))
const request = parseHttp(block('request'))
const [method, pathWithQuery, version] = request.startLine.split(' ')
const inputs = {
  appId: required(request, headerNames.appId),
  timestamp: required(request, headerNames.timestamp),
  nonce: required(request, headerNames.nonce),
  method: method!,
  pathWithQuery: pathWithQuery!,
  appAuthToken: request.headers.get(headerNames.appAuthToken) ?? '',
  idempotencyKey: request.headers.get(headerNames.idempotencyKey) ?? '',
  body: request.body,
}
const signature = block('signature')

describe('docs/api/signing.md worked example', () => {
  it('uses the published RFC 8032 example key, an Ed25519 key', () => {
    expect(privateKey.asymmetricKeyType).toBe('ed25519')
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32).toString('hex')
    expect(seed).toBe('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
    const publicPem = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString()
    expect(publicPem.trim()).toBe(block('public-key').trim())
  })

  it('documents a well-formed request', () => {
    expect(version).toBe('HTTP/1.1')
    expect(inputs.appId).toMatch(/^app_[0-9a-z]{20}$/)
    expect(inputs.nonce).toMatch(/^[A-Za-z0-9_-]{16,64}$/)
    expect(inputs.timestamp).toBe(String(Date.UTC(2026, 10, 25, 4, 0, 0) / 1000))
    expect(Number(required(request, 'content-length'))).toBe(Buffer.byteLength(inputs.body, 'utf8'))
    expect(() => JSON.parse(inputs.body) as unknown).not.toThrow()
  })

  it('gives the documented signing string, by requestSigningString and as a literal', () => {
    const documented = block('signing-string')
    expect(requestSigningString(inputs)).toBe(documented)
    // The literal is two single-quoted JavaScript strings joined by +.
    const literal = block('string-literal')
    const parts = [...literal.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map(
      (match) => JSON.parse(`"${match[1]!.replace(/"/g, '\\"')}"`) as string,
    )
    expect(parts.join('')).toBe(documented)
  })

  it('signs the documented string into the documented signature', () => {
    expect(signText(block('signing-string'), privateKey)).toBe(signature)
    expect(required(request, headerNames.signature)).toBe(signature)
    expect(verifyText(block('signing-string'), signature, crypto.createPublicKey(block('public-key')))).toBe(true)
  })

  it('shows the headers the SDK sends for the same call', () => {
    const headers = signRequest({
      appId: inputs.appId,
      privateKey,
      method: inputs.method,
      pathWithQuery: inputs.pathWithQuery,
      body: inputs.body,
      idempotencyKey: inputs.idempotencyKey,
      appAuthToken: inputs.appAuthToken,
      timestampS: Number(inputs.timestamp),
      nonce: inputs.nonce,
    })
    for (const [name, value] of Object.entries(headers)) {
      expect(request.headers.get(name), `header ${name}`).toBe(value)
    }
  })

  it('gives the documented response signing string', () => {
    const response = parseHttp(block('response'))
    const status = Number(response.startLine.split(' ')[1])
    expect(required(response, headerNames.nonce)).toBe(inputs.nonce)
    expect(
      responseSigningString({
        appId: inputs.appId,
        timestamp: required(response, headerNames.timestamp),
        nonce: inputs.nonce,
        status,
        body: response.body,
      }),
    ).toBe(block('response-signing-string'))
  })
})

/** Serves the platform key and checks a signed POST the way the platform does, without a database. */
async function stubPlatform(appPublicKey: crypto.KeyObject) {
  const platform = crypto.generateKeyPairSync('ed25519')
  const received: Array<{ verified: boolean; status: number }> = []
  const server = http.createServer((incoming, outgoing) => {
    let raw = ''
    incoming.setEncoding('utf8')
    incoming.on('data', (chunk: string) => {
      raw += chunk
    })
    incoming.on('end', () => {
      if (incoming.url === '/v1/platform-keys/sandbox') {
        outgoing.setHeader('content-type', 'application/json')
        outgoing.end(
          JSON.stringify({
            environment: 'sandbox',
            key_id: 'pk_stub',
            algorithm: 'Ed25519',
            public_key_pem: platform.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          }),
        )
        return
      }
      const header = (name: string) => String(incoming.headers[name] ?? '')
      const text = requestSigningString({
        appId: header(headerNames.appId),
        timestamp: header(headerNames.timestamp),
        nonce: header(headerNames.nonce),
        method: incoming.method ?? '',
        pathWithQuery: incoming.url ?? '',
        appAuthToken: header(headerNames.appAuthToken),
        idempotencyKey: header(headerNames.idempotencyKey),
        body: raw,
      })
      const verified = verifyText(text, header(headerNames.signature), appPublicKey)
      const status = verified ? 201 : 401
      received.push({ verified, status })
      const body = JSON.stringify(
        verified ? { id: 'store_stub' } : { code: 'AUTH_SIGNATURE_INVALID', signedString: text },
      )
      const timestamp = String(Math.floor(Date.now() / 1000))
      outgoing.statusCode = status
      outgoing.setHeader('content-type', 'application/json; charset=utf-8')
      outgoing.setHeader(headerNames.timestamp, timestamp)
      outgoing.setHeader(headerNames.nonce, header(headerNames.nonce))
      outgoing.setHeader(
        headerNames.signature,
        signText(
          responseSigningString({
            appId: header(headerNames.appId),
            timestamp,
            nonce: header(headerNames.nonce),
            status,
            body,
          }),
          platform.privateKey,
        ),
      )
      outgoing.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const close = () => new Promise((resolve) => server.close(resolve))
  return { url: `http://127.0.0.1:${port}`, received, close }
}

/** Runs a script with exactly the given environment and nothing inherited. */
function runNode(file: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
  })
}

describe('docs/api/signing.md Node script', () => {
  it('signs a request the server accepts and verifies the signed response', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baseplate-docs-'))
    const appKey = crypto.generateKeyPairSync('ed25519')
    const stub = await stubPlatform(appKey.publicKey)
    try {
      const script = path.join(dir, 'create-store.mjs')
      const keyFile = path.join(dir, 'private.pem')
      fs.writeFileSync(script, block('node'))
      fs.writeFileSync(keyFile, appKey.privateKey.export({ type: 'pkcs8', format: 'pem' }))
      const result = await runNode(script, {
        BASEPLATE_URL: stub.url,
        BASEPLATE_APP_ID: inputs.appId,
        BASEPLATE_PRIVATE_KEY: keyFile,
      })
      expect(result.code, result.output).toBe(0)
      expect(stub.received).toEqual([{ verified: true, status: 201 }])
      expect(result.output).toMatch(/^201 response signature OK /)
    } finally {
      await stub.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
