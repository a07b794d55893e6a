/**
 * The baseline: Fastify's hello world on the same Node, in its own process like the real
 * server. `node --import tsx bench/hello-server.ts <port>`
 */
import Fastify from 'fastify'

const port = Number(process.argv[2] ?? 0)
const app = Fastify({ logger: false })
app.get('/', async () => ({ hello: 'world' }))
const address = await app.listen({ port, host: '127.0.0.1' })
console.log(`hello world listening on ${address}`)
const stop = () => void app.close().then(() => process.exit(0))
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
