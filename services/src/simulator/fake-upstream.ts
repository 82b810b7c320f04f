import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createFakeResponses } from './fake-responses.ts'
import {
  digest,
  jsonTokens,
  messageTexts,
  pieces,
  replyWords,
  simulatedInputTokens,
  toolArguments,
} from './fake-text.ts'

export { simulatedInputTokens } from './fake-text.ts'

/**
 * A small OpenAI- and Anthropic-compatible upstream. It is the product's
 * built-in "simulated" provider (demo traffic goes through the real gateway to
 * it) and the stand-in for the real providers in tests. It speaks, in the real
 * APIs' shapes: Chat Completions, legacy Completions, the Responses API (with
 * its retrieve / delete / cancel / input_items companions, fake-responses.ts),
 * Embeddings, Models (list and retrieve, both providers' shapes), Anthropic
 * Messages and count_tokens. Given function tools, the reply is a call of the
 * first one (unless the conversation already ends with a tool result); asked
 * for reasoning or thinking, it reasons and reports the tokens.
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
 * - `hang`: never answers (tests upstream timeouts)
 * - `stall`: streams the first chunks, then never finishes
 * - `no-tools`: answers in text even when function tools are given
 * - `reasoning`: OpenAI APIs report reasoning tokens even when the request did not ask
 * - `absurd-usage`: a usage block with out-of-range counts (1e308, negative)
 * - `over-report`: usage says ten times the tokens the answer has (an upstream
 *   billing past the client's cap)
 * Chat honours `n`: n identical choices, completion_tokens counts all of them.
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

export type Behaviors = Set<string>
type Json = Record<string, unknown>

/** A function tool in any of the three APIs' shapes, reduced to name and JSON schema. */
interface FunctionTool {
  name: string
  schema: unknown
}

function chatTool(body: Json): FunctionTool | undefined {
  if (body.tool_choice === 'none' || !Array.isArray(body.tools)) return undefined
  const t = (body.tools as Json[]).find(
    (x) => x?.type === 'function' && (x.function as Json | undefined)?.name,
  )
  const f = t?.function as Json | undefined
  return f ? { name: String(f.name), schema: f.parameters } : undefined
}

function messagesTool(body: Json): FunctionTool | undefined {
  const choice = body.tool_choice as Json | undefined
  if (choice?.type === 'none' || !Array.isArray(body.tools)) return undefined
  // Client tools carry an input_schema; server tools (web search, ...) do not.
  const t = (body.tools as Json[]).find((x) => typeof x?.name === 'string' && x.input_schema)
  return t ? { name: String(t.name), schema: t.input_schema } : undefined
}

export function behaviorsOf(req: IncomingMessage, model: string): { behaviors: Behaviors; model: string } {
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

  /** OpenAI's 400 for a request without the fields an endpoint needs. */
  function missingFields(res: ServerResponse, fields: string) {
    return send(res, 400, {
      error: { message: `${fields} are required`, type: 'invalid_request_error', param: null, code: null },
    })
  }

  /** The failures a test asks of an OpenAI endpoint (x-fake-behavior): true when this answer is one. */
  function failsOpenAi(res: ServerResponse, b: Set<string>): boolean {
    if (b.has('hang')) hanging.add(res)
    else if (b.has('error-429')) openaiError(res, 429)
    else if (b.has('error-500')) openaiError(res, 500)
    else return false
    return true
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

  /** Usage in the Chat Completions / Completions shape; reasoning is part of completion_tokens, cached of prompt_tokens. */
  function chatUsage(promptTokens: number, cached: number, completion: number, reasoning: number) {
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
      prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: reasoning,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    }
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse, body: Json) {
    if (typeof body.model !== 'string' || !Array.isArray(body.messages)) {
      return missingFields(res, "'model' and 'messages'")
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    // As the real API: a prompt_cache_key makes cache hits likely.
    if (body.prompt_cache_key !== undefined) b.add('cache')
    if (failsOpenAi(res, b)) return
    const texts = messageTexts(body)
    const seed = digest(body.model, JSON.stringify(body.messages))
    const maxTokens = (body.max_completion_tokens ?? body.max_tokens) as number | undefined
    const { words, truncated } = replyWords(seed, maxTokens)
    const toolsText = Array.isArray(body.tools) ? JSON.stringify(body.tools) : ''
    const promptTokens = simulatedInputTokens(texts) + jsonTokens(toolsText)
    const cached = b.has('cache') ? Math.floor(promptTokens / 2) : 0
    // A tool call unless the conversation already ends with the tool's result.
    const last = (body.messages as Json[]).at(-1)
    const tool = last?.role === 'tool' || b.has('no-tools') ? undefined : chatTool(body)
    const toolCall = tool
      ? { id: `call_${seed.slice(0, 24)}`, name: tool.name, args: toolArguments(tool.schema, seed) }
      : undefined
    const reasoning = body.reasoning_effort !== undefined || b.has('reasoning') ? words.length * 2 : 0
    const visible = toolCall ? jsonTokens(toolCall.args) : words.length
    const usage = chatUsage(promptTokens, cached, visible + reasoning, reasoning)
    // Chat honours n (every choice billed); absurd-usage and over-report are for budget tests.
    const choiceCount = typeof body.n === 'number' && body.n > 1 ? Math.floor(body.n) : 1
    usage.completion_tokens *= choiceCount * (b.has('over-report') ? 10 : 1)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    if (b.has('absurd-usage')) Object.assign(usage, { prompt_tokens: 1e308, completion_tokens: -7 })
    const id = `chatcmpl-${seed.slice(0, 29)}`
    const created = Math.floor(now() / 1000)
    const fingerprint = `fp_${seed.slice(32, 42)}`
    const finish = toolCall ? 'tool_calls' : truncated ? 'length' : 'stop'
    const withUsage = !b.has('no-usage')

    if (body.stream !== true) {
      const message: Json = toolCall
        ? {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: toolCall.id,
                type: 'function',
                function: { name: toolCall.name, arguments: toolCall.args },
              },
            ],
            refusal: null,
            annotations: [],
          }
        : { role: 'assistant', content: words.join(' '), refusal: null, annotations: [] }
      const out: Json = {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: Array.from({ length: choiceCount }, (_, index) => ({
          index,
          message,
          logprobs: null,
          finish_reason: finish,
        })),
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
    const delta = (d: Json) => chunk([{ index: 0, delta: d, logprobs: null, finish_reason: null }])
    const events: string[] = []
    if (toolCall) {
      events.push(
        delta({
          role: 'assistant',
          content: null,
          tool_calls: [
            { index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: '' } },
          ],
          refusal: null,
        }),
      )
      for (const piece of pieces(toolCall.args)) {
        events.push(delta({ tool_calls: [{ index: 0, function: { arguments: piece } }] }))
      }
    } else {
      events.push(delta({ role: 'assistant', content: '', refusal: null }))
      words.forEach((w, i) => {
        events.push(delta({ content: i === 0 ? w : ` ${w}` }))
      })
    }
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]))
    if (includeUsage && withUsage) events.push(chunk([], usage))
    events.push('data: [DONE]\n\n')
    await streamEvents(res, events, b)
  }

  /** Legacy Completions: `prompt` in, `choices[].text` out; streamed like chat, include_usage included. */
  async function completions(req: IncomingMessage, res: ServerResponse, body: Json) {
    const prompt = body.prompt
    if (typeof body.model !== 'string' || (typeof prompt !== 'string' && !Array.isArray(prompt))) {
      return missingFields(res, "'model' and 'prompt'")
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    if (failsOpenAi(res, b)) return
    const texts =
      typeof prompt === 'string'
        ? [prompt]
        : prompt.map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
    const seed = digest(body.model, JSON.stringify(prompt))
    // The legacy API's default max_tokens is 16.
    const { words, truncated } = replyWords(seed, (body.max_tokens as number | undefined) ?? 16)
    const promptTokens = simulatedInputTokens(texts)
    const cached = b.has('cache') ? Math.floor(promptTokens / 2) : 0
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: words.length,
      total_tokens: promptTokens + words.length,
      ...(cached > 0 ? { prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 } } : {}),
    }
    const id = `cmpl-${seed.slice(0, 29)}`
    const created = Math.floor(now() / 1000)
    const finish = truncated ? 'length' : 'stop'
    const withUsage = !b.has('no-usage')
    const text = ` ${words.join(' ')}`
    if (body.stream !== true) {
      const out: Json = {
        id,
        object: 'text_completion',
        created,
        model,
        choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
      }
      if (withUsage) out.usage = usage
      return send(res, 200, out)
    }
    const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true
    const chunk = (choices: unknown[], u?: unknown) => {
      const c: Json = { id, object: 'text_completion', created, choices, model, system_fingerprint: null }
      if (includeUsage) c.usage = u ?? null
      return `data: ${JSON.stringify(c)}\n\n`
    }
    const events = words.map((w, i) =>
      chunk([
        { text: ` ${w}`, index: 0, logprobs: null, finish_reason: i === words.length - 1 ? finish : null },
      ]),
    )
    if (includeUsage && withUsage) events.push(chunk([], usage))
    events.push('data: [DONE]\n\n')
    await streamEvents(res, events, b)
  }

  function embeddings(req: IncomingMessage, res: ServerResponse, body: Json) {
    const input = body.input
    const inputs = typeof input === 'string' ? [input] : Array.isArray(input) ? input : undefined
    if (typeof body.model !== 'string' || !inputs) {
      return missingFields(res, "'model' and 'input'")
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    if (failsOpenAi(res, b)) return
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

  /** Prompt tokens as Anthropic counts them: system, messages (tool results included) and tool definitions. */
  function anthropicPromptTokens(body: Json): number {
    const tools = Array.isArray(body.tools) ? JSON.stringify(body.tools) : ''
    return simulatedInputTokens(messageTexts(body)) + jsonTokens(tools)
  }

  function anthropicInvalid(res: ServerResponse, message: string) {
    send(res, 400, { type: 'error', error: { type: 'invalid_request_error', message } })
  }

  async function messages(req: IncomingMessage, res: ServerResponse, body: Json) {
    if (
      typeof body.model !== 'string' ||
      !Array.isArray(body.messages) ||
      typeof body.max_tokens !== 'number'
    ) {
      return anthropicInvalid(res, 'model, messages and max_tokens are required')
    }
    const { behaviors: b, model } = behaviorsOf(req, body.model)
    // As the real API: a cache_control breakpoint makes the prompt cached.
    if (JSON.stringify([body.system, body.messages]).includes('"cache_control"')) b.add('cache')
    if (b.has('hang')) return void hanging.add(res)
    if (b.has('error-429')) return anthropicError(res, 429)
    if (b.has('error-500')) return anthropicError(res, 500)
    const seed = digest(body.model, JSON.stringify(body.system ?? ''), JSON.stringify(body.messages))
    const { words, truncated } = replyWords(seed, body.max_tokens)
    const total = anthropicPromptTokens(body)
    // Anthropic counts the three kinds apart: input_tokens excludes cache reads and writes.
    const cacheRead = b.has('cache') ? Math.floor(total / 2) : 0
    const cacheWrite = b.has('cache') ? Math.floor(total / 4) : 0
    const input = total - cacheRead - cacheWrite
    const id = `msg_${Buffer.from(seed.slice(0, 36), 'hex').toString('base64url')}`
    // Thinking when asked (its tokens are output tokens), then text, then a
    // tool call unless the last user turn already carries a tool result.
    const thinkingMode = (body.thinking as Json | undefined)?.type
    const thinking =
      thinkingMode === 'enabled' || thinkingMode === 'adaptive'
        ? {
            text: `Thinking about ${[...words].reverse().join(' ')}.`,
            signature: Buffer.from(seed, 'hex').toString('base64'),
          }
        : undefined
    const lastContent = (body.messages as Json[]).at(-1)?.content
    const answeredTool =
      Array.isArray(lastContent) && lastContent.some((c) => (c as Json | undefined)?.type === 'tool_result')
    const tool = answeredTool || b.has('no-tools') ? undefined : messagesTool(body)
    const toolUse = tool
      ? { id: `toolu_${seed.slice(0, 24)}`, name: tool.name, args: toolArguments(tool.schema, seed) }
      : undefined
    const thinkingTokens = thinking ? jsonTokens(thinking.text) : 0
    const outputTokens = words.length + thinkingTokens + (toolUse ? jsonTokens(toolUse.args) : 0)
    const stop = toolUse ? 'tool_use' : truncated ? 'max_tokens' : 'end_turn'
    const withUsage = !b.has('no-usage')
    const blocks: Json[] = []
    if (thinking) blocks.push({ type: 'thinking', thinking: thinking.text, signature: thinking.signature })
    blocks.push({ type: 'text', text: words.join(' ') })
    if (toolUse)
      blocks.push({ type: 'tool_use', id: toolUse.id, name: toolUse.name, input: JSON.parse(toolUse.args) })

    if (body.stream !== true) {
      const out: Json = {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: blocks,
        stop_reason: stop,
        stop_sequence: null,
      }
      if (withUsage) {
        out.usage = {
          input_tokens: input,
          cache_creation_input_tokens: cacheWrite,
          cache_read_input_tokens: cacheRead,
          output_tokens: outputTokens,
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
    const events = [ev('message_start', { message: startMessage })]
    let index = 0
    if (thinking) {
      events.push(
        ev('content_block_start', {
          index,
          content_block: { type: 'thinking', thinking: '', signature: '' },
        }),
      )
      for (const piece of pieces(thinking.text, 16)) {
        events.push(ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: piece } }))
      }
      events.push(
        ev('content_block_delta', {
          index,
          delta: { type: 'signature_delta', signature: thinking.signature },
        }),
      )
      events.push(ev('content_block_stop', { index }))
      index++
    }
    events.push(
      ev('content_block_start', { index, content_block: { type: 'text', text: '' } }),
      ev('ping', {}),
    )
    words.forEach((w, i) => {
      events.push(
        ev('content_block_delta', { index, delta: { type: 'text_delta', text: i === 0 ? w : ` ${w}` } }),
      )
    })
    events.push(ev('content_block_stop', { index }))
    if (toolUse) {
      index++
      events.push(
        ev('content_block_start', {
          index,
          content_block: { type: 'tool_use', id: toolUse.id, name: toolUse.name, input: {} },
        }),
      )
      for (const piece of pieces(toolUse.args)) {
        events.push(
          ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } }),
        )
      }
      events.push(ev('content_block_stop', { index }))
    }
    const delta: Json = { delta: { stop_reason: stop, stop_sequence: null } }
    if (withUsage) delta.usage = { output_tokens: outputTokens }
    events.push(ev('message_delta', delta))
    events.push(ev('message_stop', {}))
    await streamEvents(res, events, b)
  }

  function countTokens(res: ServerResponse, body: Json) {
    if (typeof body.model !== 'string' || !Array.isArray(body.messages)) {
      return anthropicInvalid(res, 'model and messages are required')
    }
    send(res, 200, { input_tokens: anthropicPromptTokens(body) })
  }

  const MODEL_IDS = [
    'gpt-4o',
    'gpt-4o-mini',
    'text-embedding-3-small',
    'claude-sonnet-4-5',
    'claude-haiku-4-5',
  ]
  const anthropicModel = (id: string) => ({
    type: 'model',
    id,
    display_name: id,
    created_at: '2025-01-01T00:00:00Z',
  })
  const openaiModel = (id: string) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'simulated' })

  function models(req: IncomingMessage, res: ServerResponse) {
    if (req.headers['anthropic-version']) {
      const data = MODEL_IDS.filter((m) => m.startsWith('claude')).map(anthropicModel)
      return send(res, 200, { data, has_more: false, first_id: data[0]?.id, last_id: data.at(-1)?.id })
    }
    send(res, 200, { object: 'list', data: MODEL_IDS.map(openaiModel) })
  }

  function model(req: IncomingMessage, res: ServerResponse, id: string) {
    const anthropic = Boolean(req.headers['anthropic-version'])
    if (!MODEL_IDS.includes(id)) {
      if (anthropic) {
        return send(res, 404, { type: 'error', error: { type: 'not_found_error', message: `model: ${id}` } })
      }
      return send(res, 404, {
        error: {
          message: `The model '${id}' does not exist`,
          type: 'invalid_request_error',
          param: 'model',
          code: 'model_not_found',
        },
      })
    }
    send(res, 200, anthropic ? anthropicModel(id) : openaiModel(id))
  }

  const responsesApi = createFakeResponses({
    now,
    send,
    streamEvents,
    openaiError,
    behaviorsOf,
    hang: (res) => void hanging.add(res),
  })

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
        if (route === 'POST /v1/completions') return completions(req, res, body ?? {})
        if (route === 'POST /v1/embeddings') return embeddings(req, res, body ?? {})
        if (route === 'POST /v1/messages') return messages(req, res, body ?? {})
        if (route === 'POST /v1/messages/count_tokens') return countTokens(res, body ?? {})
        if (route === 'GET /v1/models') return models(req, res)
        if (req.method === 'GET' && path.startsWith('/v1/models/')) {
          return model(req, res, decodeURIComponent(path.slice('/v1/models/'.length)))
        }
        if (path === '/v1/responses' || path.startsWith('/v1/responses/')) {
          const url = new URL(req.url ?? '/', 'http://fake')
          if (await responsesApi.route(req, res, path, url.searchParams, body)) return
        }
        send(res, 404, { error: { message: `no route ${route}`, type: 'invalid_request_error' } })
      }
      // As a provider that fails mid-answer: the connection drops and the gateway records the upstream failure (502).
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
