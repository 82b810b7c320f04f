import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'

/**
 * The floor for any Node.js gateway: a pass-through proxy with no auth, no
 * parsing and no recording (node:http in, undici out, bodies piped). What it
 * adds over the direct path is the cost of one more process hop on this
 * machine, which every gateway pays too.
 * Args: --upstream=<origin>. Prints `READY <origin>`.
 */
const upstream = process.argv.find((a) => a.startsWith('--upstream='))?.slice(11)
if (!upstream) throw new Error('--upstream=<origin> is required')
const agent = new Agent({ connections: 512, keepAliveTimeout: 30_000 })

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  try {
    const up = await agent.request({
      origin: upstream,
      path: req.url ?? '/',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' },
      body: Buffer.concat(chunks),
    })
    res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json') })
    for await (const c of up.body) res.write(c)
    res.end()
  } catch {
    res.writeHead(502).end()
  }
})
server.keepAliveTimeout = 120_000
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`)
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
