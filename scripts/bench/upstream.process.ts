import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * The upstream every path of the gateway benchmark talks to, run in its own
 * process: an OpenAI-compatible /v1/chat/completions that answers after a
 * fixed delay (`--latency-ms=N`, 0 for none), streamed or not, with a usage
 * block. Answers are built once at start, so the upstream spends as little
 * of the shared CPU as possible; it still reads and parses each request body
 * as a real provider would. (The product's simulator, services/src/simulator,
 * hashes every prompt and has no fixed-latency mode.)
 * Prints `READY <origin>` on stdout when listening.
 */
const latencyMs = Number(process.argv.find((a) => a.startsWith('--latency-ms='))?.slice(13) ?? 0)
const CHUNKS = 16

const usage = {
  prompt_tokens: 112,
  completion_tokens: CHUNKS,
  total_tokens: 112 + CHUNKS,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
}
const base = {
  id: 'chatcmpl-bench0000000000000000000000',
  created: 1_750_000_000,
  model: 'gpt-4o-mini',
  service_tier: 'default',
  system_fingerprint: 'fp_bench0000',
}
const words = Array.from({ length: CHUNKS }, (_, i) => `word${i}`)
const completion = Buffer.from(
  JSON.stringify({
    ...base,
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: words.join(' '), refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage,
  }),
)
function sse(includeUsage: boolean): Buffer {
  const chunk = (choices: unknown[], u?: unknown) =>
    `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, ...(includeUsage ? { usage: u ?? null } : {}) })}\n\n`
  const events = [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])]
  words.forEach((w, i) => {
    events.push(chunk([{ index: 0, delta: { content: i === 0 ? w : ` ${w}` }, finish_reason: null }]))
  })
  events.push(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))
  if (includeUsage) events.push(chunk([], usage))
  events.push('data: [DONE]\n\n')
  return Buffer.from(events.join(''))
}
const streamWithUsage = sse(true)
const streamWithoutUsage = sse(false)
// A stream arrives in a few network writes, not one: split the body in four.
const quarters = (b: Buffer) =>
  [0, 1, 2, 3].map((i) => b.subarray((i * b.length) >> 2, ((i + 1) * b.length) >> 2))
const streamParts = new Map([
  [true, quarters(streamWithUsage)],
  [false, quarters(streamWithoutUsage)],
])

function answer(req: IncomingMessage, res: ServerResponse, body: Buffer) {
  let json: { stream?: boolean; stream_options?: { include_usage?: boolean } }
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad json"}}')
    return
  }
  if (req.url !== '/v1/chat/completions') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"no route"}}')
    return
  }
  if (json.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    const parts = streamParts.get(json.stream_options?.include_usage === true)!
    for (const p of parts) res.write(p)
    res.end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': completion.length })
  res.end(completion)
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    if (latencyMs > 0) setTimeout(() => answer(req, res, body), latencyMs)
    else answer(req, res, body)
  })
})
server.keepAliveTimeout = 120_000
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`)
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
