import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A small OpenAI- and Anthropic-compatible upstream. It is the product's
 * built-in "simulated" provider (demo traffic goes through the real gateway to
 * it) and the stand-in for the real providers in tests.
 *
 * Everything it answers is a pure function of the request (and of `now`), so
 * tests can predict tokens and compare bytes. Behaviours are chosen per
 * request by the `x-fake-behavior` header or by `@`-suffixes on the model name
 * (`gpt-4o-mini@slow@cache`), comma- or `@`-separated:
 * - `error-429`, `error-500`: the provider's error body with that status
 * - `slow`: streamed chunks `slowChunkMs` apart
 * - `no-usage`: no usage block anywhere (non-stream and stream)
 * - `cache`: part of the prompt is served from / written to the prompt cache
 *   (also set by an OpenAI `prompt_cache_key` or an Anthropic `cache_control`)
 * - `reasoning`: chat completions think: reasoning_tokens (twice the visible
 *   words) inside completion_tokens (also set by a `reasoning_effort`)
 * - `hang`: never answers (tests upstream timeouts)
 * - `stall`: streams the first chunks, then never finishes
 */
export interface FakeUpstreamOptions {
  host?: string
  port?: number
  /** Clock for `created` fields; fixed in tests that compare bytes. */
  now?: () => number
  /** Delay between streamed chunks for `slow` (default 40 ms). */
  slowChunkMs?: number
  /** Delay between streamed chunks otherwise (default 0: as fast as the socket takes them). */
  chunkMs?: number
  /** Keep every request in `received` (tests only: the demo must not hold prompts in memory). */
  record?: boolean
}

export interface FakeUpstream {
  /** Origin, e.g. http://127.0.0.1:34567; the APIs live under `${url}/v1`. */
  url: string
  /** Requests received so far when `record` is set (for tests that check what was forwarded). */
  received: {
    path: string
    /** The query string without `?` ('' when none). */
    query: string
    headers: IncomingMessage['headers']
    body: Record<string, unknown> | undefined
  }[]
  close(): Promise<void>
}

type Behaviors = Set<string>
type Json = Record<string, unknown>

const VOCAB =
  'the of metrics token stream cache budget latency request gateway cluster shard replica query merge part rollup bucket window batch insert model prompt answer cost team user key tag project'.split(
    ' ',
  )

/** Deterministic prompt size: about four characters per token, plus a small per-message overhead. */
export function simulatedInputTokens(texts: string[]): number {
  let n = 3
  for (const t of texts) n += 4 + Math.ceil(t.length / 4)
  return n
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    let s = ''
    for (const part of content) {
      if (part && typeof part === 'object' && typeof (part as Json).text === 'string')
        s += (part as Json).text
    }
    return s
  }
  return ''
}

function messageTexts(body: Json): string[] {
  const out: string[] = []
  if (body.system !== undefined) out.push(textOf(body.system))
  if (Array.isArray(body.messages)) for (const m of body.messages) out.push(textOf((m as Json)?.content))
  return out
}

function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex')
}

/** The reply: 8..48 words picked from the prompt's hash, cut at max_tokens; one word is one token. */
function replyWords(seed: string, maxTokens: number | undefined): { words: string[]; truncated: boolean } {
  const h = Buffer.from(seed.slice(0, 32), 'hex')
  const natural = 8 + (h[0]! % 41)
  const n = maxTokens !== undefined ? Math.min(natural, Math.max(1, maxTokens)) : natural
  const words: string[] = []
  for (let i = 0; i < n; i++) words.push(VOCAB[h[(i + 1) % h.length]! % VOCAB.length]!)
  return { words, truncated: n < natural }
}

function behaviorsOf(req: IncomingMessage, model: string): { behaviors: Behaviors; model: string } {
  const behaviors: Behaviors = new Set()
  const header = req.headers['x-fake-behavior']
  if (typeof header === 'string') for (const b of header.split(/[,@]/)) if (b.trim()) behaviors.add(b.trim())
  const [base, ...suffixes] = model.split('@')
  for (const b of suffixes) if (b) behaviors.add(b)
  return { behaviors, model: base ?? model }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function createFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const now = opts.now ?? Date.now
  const slowMs = opts.slowChunkMs ?? 40
  const chunkMs = opts.chunkMs ?? 0
  const received: FakeUpstream['received'] = []
  const hanging = new Set<ServerResponse>()

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const text = JSON.stringify(body)
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    })
    res.end(text)
  }

  function openaiError(res: ServerResponse, status: number) {
    if (status === 429) {
      return send(
        res,
        429,
        {
          error: {
            message: 'Rate limit reached for requests (simulated). Please try again in 1s.',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
        { 'retry-after': '1' },
      )
    }
    send(res, status, {
      error: {
        message: 'The server had an error while processing your request (simulated).',
        type: 'server_error',
        param: null,
        code: null,
      },
    })
  }

  function anthropicError(res: ServerResponse, status: number) {
    const type = status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : 'api_error'
    const message =
      status === 429
        ? 'Number of requests has exceeded your rate limit (simulated).'
        : 'Internal server error (simulated).'
    send(
      res,
      status,
      { type: 'error', error: { type, message } },
      status === 429 ? { 'retry-after': '1' } : {},
    )
  }

  /** Writes SSE events with the chosen pacing; stops quietly if the client went away. */
  async function streamEvents(res: ServerResponse, events: string[], b: Behaviors) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    const gap = b.has('slow') ? slowMs : chunkMs
    for (let i = 0; i < events.length; i++) {
      if (res.destroyed) return
      if (b.has('stall') && i === 3) {
        hanging.add(res)
        return
      }
      res.write(events[i])
      if (gap > 0 && i < events.length - 1) await sleep(gap)
    }
    res.end()
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse, body: Json) {
    if (typeof body.model !== 'string' || !Array.isArray(body.messages)) {
      return send(res, 400, {
        error: {
          message: "'model' and 'messages' are required",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      })
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    // As the real API: a prompt_cache_key makes cache hits likely, a reasoning
    // effort makes the model think (hidden tokens billed in completion_tokens).
    if (body.prompt_cache_key !== undefined) b.add('cache')
    if (body.reasoning_effort !== undefined) b.add('reasoning')
    if (b.has('hang')) return void hanging.add(res)
    if (b.has('error-429')) return openaiError(res, 429)
    if (b.has('error-500')) return openaiError(res, 500)
    const texts = messageTexts(body)
    const seed = digest(body.model, JSON.stringify(body.messages))
    const maxTokens = (body.max_completion_tokens ?? body.max_tokens) as number | undefined
    const { words, truncated } = replyWords(seed, maxTokens)
    const promptTokens = simulatedInputTokens(texts)
    const cached = b.has('cache') ? Math.floor(promptTokens / 2) : 0
    const reasoning = b.has('reasoning') ? 2 * words.length : 0
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: words.length + reasoning,
      total_tokens: promptTokens + words.length + reasoning,
      prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: reasoning,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    }
    const id = `chatcmpl-${seed.slice(0, 29)}`
    const created = Math.floor(now() / 1000)
    const fingerprint = `fp_${seed.slice(32, 42)}`
    const finish = truncated ? 'length' : 'stop'
    const withUsage = !b.has('no-usage')

    if (body.stream !== true) {
      const out: Json = {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: words.join(' '), refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: finish,
          },
        ],
      }
      if (withUsage) out.usage = usage
      out.service_tier = 'default'
      out.system_fingerprint = fingerprint
      return send(res, 200, out)
    }

    // As the real API: with include_usage every chunk carries `"usage":null`
    // and one more chunk with empty choices carries the totals.
    const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true
    const chunk = (choices: unknown[], u?: unknown) => {
      const c: Json = {
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        service_tier: 'default',
        system_fingerprint: fingerprint,
        choices,
      }
      if (includeUsage) c.usage = u ?? null
      return `data: ${JSON.stringify(c)}\n\n`
    }
    const events = [
      chunk([
        {
          index: 0,
          delta: { role: 'assistant', content: '', refusal: null },
          logprobs: null,
          finish_reason: null,
        },
      ]),
    ]
    words.forEach((w, i) => {
      events.push(
        chunk([{ index: 0, delta: { content: i === 0 ? w : ` ${w}` }, logprobs: null, finish_reason: null }]),
      )
    })
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]))
    if (includeUsage && withUsage) events.push(chunk([], usage))
    events.push('data: [DONE]\n\n')
    await streamEvents(res, events, b)
  }

  function embeddings(req: IncomingMessage, res: ServerResponse, body: Json) {
    const input = body.input
    const inputs = typeof input === 'string' ? [input] : Array.isArray(input) ? input : undefined
    if (typeof body.model !== 'string' || !inputs) {
      return send(res, 400, {
        error: {
          message: "'model' and 'input' are required",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      })
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    if (b.has('hang')) return void hanging.add(res)
    if (b.has('error-429')) return openaiError(res, 429)
    if (b.has('error-500')) return openaiError(res, 500)
    const dims = typeof body.dimensions === 'number' ? Math.min(Math.max(1, body.dimensions), 3072) : 16
    let tokens = 0
    const data = inputs.map((item, index) => {
      const text = typeof item === 'string' ? item : JSON.stringify(item)
      tokens += Math.max(1, Math.ceil(text.length / 4))
      const h = Buffer.from(digest(model, text), 'hex')
      const vec = new Float32Array(dims)
      for (let i = 0; i < dims; i++) vec[i] = (h[i % h.length]! - 128) / 128
      const embedding =
        body.encoding_format === 'base64' ? Buffer.from(vec.buffer).toString('base64') : Array.from(vec)
      return { object: 'embedding', index, embedding }
    })
    const out: Json = { object: 'list', data, model }
    if (!b.has('no-usage')) out.usage = { prompt_tokens: tokens, total_tokens: tokens }
    send(res, 200, out)
  }

  async function messages(req: IncomingMessage, res: ServerResponse, body: Json) {
    if (
      typeof body.model !== 'string' ||
      !Array.isArray(body.messages) ||
      typeof body.max_tokens !== 'number'
    ) {
      return send(res, 400, {
        type: 'error',
        error: { type: 'invalid_request_error', message: 'model, messages and max_tokens are required' },
      })
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    // As the real API: a cache_control breakpoint makes the prompt cached.
    if (JSON.stringify([body.system, body.messages]).includes('"cache_control"')) b.add('cache')
    if (b.has('hang')) return void hanging.add(res)
    if (b.has('error-429')) return anthropicError(res, 429)
    if (b.has('error-500')) return anthropicError(res, 500)
    const seed = digest(body.model, JSON.stringify(body.system ?? ''), JSON.stringify(body.messages))
    const { words, truncated } = replyWords(seed, body.max_tokens)
    const total = simulatedInputTokens(messageTexts(body))
    // Anthropic counts the three kinds apart: input_tokens excludes cache reads and writes.
    const cacheRead = b.has('cache') ? Math.floor(total / 2) : 0
    const cacheWrite = b.has('cache') ? Math.floor(total / 4) : 0
    const input = total - cacheRead - cacheWrite
    const id = `msg_${Buffer.from(seed.slice(0, 36), 'hex').toString('base64url')}`
    const stop = truncated ? 'max_tokens' : 'end_turn'
    const withUsage = !b.has('no-usage')

    if (body.stream !== true) {
      const out: Json = {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: words.join(' ') }],
        stop_reason: stop,
        stop_sequence: null,
      }
      if (withUsage) {
        out.usage = {
          input_tokens: input,
          cache_creation_input_tokens: cacheWrite,
          cache_read_input_tokens: cacheRead,
          output_tokens: words.length,
          service_tier: 'standard',
        }
      }
      return send(res, 200, out)
    }

    const ev = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    const startMessage: Json = {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
    }
    if (withUsage) {
      startMessage.usage = {
        input_tokens: input,
        cache_creation_input_tokens: cacheWrite,
        cache_read_input_tokens: cacheRead,
        output_tokens: 1,
        service_tier: 'standard',
      }
    }
    const events = [
      ev('message_start', { message: startMessage }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping', {}),
    ]
    words.forEach((w, i) => {
      events.push(
        ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: i === 0 ? w : ` ${w}` } }),
      )
    })
    events.push(ev('content_block_stop', { index: 0 }))
    const delta: Json = { delta: { stop_reason: stop, stop_sequence: null } }
    if (withUsage) delta.usage = { output_tokens: words.length }
    events.push(ev('message_delta', delta))
    events.push(ev('message_stop', {}))
    await streamEvents(res, events, b)
  }

  function models(req: IncomingMessage, res: ServerResponse) {
    const ids = ['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small', 'claude-sonnet-4-5', 'claude-haiku-4-5']
    if (req.headers['anthropic-version']) {
      const data = ids
        .filter((m) => m.startsWith('claude'))
        .map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' }))
      return send(res, 200, { data, has_more: false, first_id: data[0]?.id, last_id: data.at(-1)?.id })
    }
    send(res, 200, {
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'simulated' })),
    })
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!
      let body: Json | undefined
      if (chunks.length > 0) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json
        } catch {
          return send(res, 400, { error: { message: 'invalid JSON body', type: 'invalid_request_error' } })
        }
      }
      if (opts.record) {
        received.push({ path, query: (req.url ?? '').split('?')[1] ?? '', headers: req.headers, body })
      }
      res.on('close', () => hanging.delete(res))
      const route = `${req.method} ${path}`
      const run = async () => {
        if (route === 'POST /v1/chat/completions') return chatCompletions(req, res, body ?? {})
        if (route === 'POST /v1/embeddings') return embeddings(req, res, body ?? {})
        if (route === 'POST /v1/messages') return messages(req, res, body ?? {})
        if (route === 'GET /v1/models') return models(req, res)
        send(res, 404, { error: { message: `no route ${route}`, type: 'invalid_request_error' } })
      }
      run().catch(() => res.destroy())
    })
  })
  server.keepAliveTimeout = 60_000

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    received,
    async close() {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
