import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  digest,
  jsonTokens,
  pieces,
  replyWords,
  simulatedInputTokens,
  textOf,
  toolArguments,
} from './fake-text.ts'

/**
 * The fake provider's OpenAI Responses API: `POST /v1/responses` (streamed as
 * the real API's typed events, or one JSON object), and for stored responses
 * `GET` / `DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel` and
 * `GET /v1/responses/{id}/input_items`. Usage is in the final
 * `response.completed` (or `response.incomplete`) event and the body's
 * `usage`: input_tokens with cached_tokens inside, output_tokens with
 * reasoning_tokens inside, as the real API reports them.
 */
type Json = Record<string, unknown>
type Behaviors = Set<string>

export interface FakeResponsesDeps {
  now: () => number
  send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void
  streamEvents(res: ServerResponse, events: string[], b: Behaviors): Promise<void>
  openaiError(res: ServerResponse, status: number): void
  hang(res: ServerResponse): void
  behaviorsOf(req: IncomingMessage, model: string): { behaviors: Behaviors; model: string }
}

interface Stored {
  response: Json
  inputItems: Json[]
  background: boolean
}

/** Stored responses kept (oldest dropped first): the fake lives for a test or a demo. */
const MAX_STORED = 1000

export function createFakeResponses(deps: FakeResponsesDeps) {
  const stored = new Map<string, Stored>()

  function error(
    res: ServerResponse,
    status: number,
    message: string,
    param: string | null,
    code: string | null,
  ) {
    deps.send(res, status, { error: { message, type: 'invalid_request_error', param, code } })
  }

  const notFound = (res: ServerResponse, id: string) =>
    error(res, 404, `Response with id '${id}' not found.`, null, null)

  /** The request's `input` as the input items the API stores (ids added). */
  function inputItems(input: unknown, seed: string): Json[] {
    const list =
      typeof input === 'string' ? [{ role: 'user', content: input }] : Array.isArray(input) ? input : []
    return (list as Json[]).map((item, i) => {
      const id = `msg_${seed.slice(i % 40, (i % 40) + 24)}${i}`
      if (item && typeof item === 'object' && item.type === undefined && typeof item.role === 'string') {
        const content =
          typeof item.content === 'string'
            ? [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content }]
            : item.content
        return { id, type: 'message', role: item.role, status: 'completed', content }
      }
      return { id, ...item }
    })
  }

  function itemTexts(items: Json[]): string[] {
    return items.map(
      (item) =>
        textOf(item.content) +
        (typeof item.arguments === 'string' ? item.arguments : '') +
        (typeof item.output === 'string' ? item.output : ''),
    )
  }

  async function create(req: IncomingMessage, res: ServerResponse, body: Json) {
    if (typeof body.model !== 'string') {
      return error(res, 400, "Missing required parameter: 'model'.", 'model', 'missing_required_parameter')
    }
    if (body.input !== undefined && typeof body.input !== 'string' && !Array.isArray(body.input)) {
      return error(res, 400, "Invalid type for 'input'.", 'input', 'invalid_type')
    }
    const { behaviors: b, model } = deps.behaviorsOf(req, body.model)
    if (b.has('hang')) return deps.hang(res)
    if (b.has('error-429')) return deps.openaiError(res, 429)
    if (b.has('error-500')) return deps.openaiError(res, 500)
    const previousId = typeof body.previous_response_id === 'string' ? body.previous_response_id : null
    const previous = previousId ? stored.get(previousId) : undefined
    if (previousId && !previous) {
      return error(
        res,
        400,
        `Previous response with id '${previousId}' not found.`,
        'previous_response_id',
        'previous_response_not_found',
      )
    }
    const instructions = typeof body.instructions === 'string' ? body.instructions : null
    const seed = digest(body.model, JSON.stringify(body.input ?? ''), previousId ?? '', instructions ?? '')
    const items = inputItems(body.input, seed)
    const tools = Array.isArray(body.tools) ? (body.tools as Json[]) : []
    // The conversation so far is input again: the previous turn's tokens count.
    const prevUsage = previous?.response.usage as Json | null | undefined
    const carried = prevUsage ? Number(prevUsage.input_tokens) + Number(prevUsage.output_tokens) : 0
    const promptTokens =
      simulatedInputTokens([instructions ?? '', ...itemTexts(items)]) +
      (tools.length > 0 ? jsonTokens(JSON.stringify(tools)) : 0) +
      carried
    const cached = b.has('cache') ? Math.floor(promptTokens / 2) : 0
    const maxOut = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : undefined
    const { words, truncated } = replyWords(seed, maxOut)
    const reasoningAsked = (body.reasoning && typeof body.reasoning === 'object') || b.has('reasoning')
    const reasoningTokens = reasoningAsked ? words.length * 2 : 0
    const answered = items.some((i) => i.type === 'function_call_output')
    const tool =
      body.tool_choice === 'none' || answered || b.has('no-tools')
        ? undefined
        : tools.find((t) => t.type === 'function' && typeof t.name === 'string')
    const call = tool
      ? {
          id: `fc_${seed.slice(0, 40)}`,
          callId: `call_${seed.slice(40, 64)}`,
          name: String(tool.name),
          args: toolArguments(tool.parameters, seed),
        }
      : undefined
    const outputTokens = reasoningTokens + (call ? jsonTokens(call.args) : words.length)
    const id = `resp_${seed.slice(0, 48)}`
    const text = words.join(' ')
    const status = truncated && !call ? 'incomplete' : 'completed'
    const withUsage = !b.has('no-usage')

    const reasoningItem = reasoningAsked
      ? { id: `rs_${seed.slice(8, 56)}`, type: 'reasoning', summary: [] }
      : undefined
    const messageId = `msg_${seed.slice(16, 64)}`
    const part = (t: string) => ({ type: 'output_text', annotations: [], logprobs: [], text: t })
    const finalItem: Json = call
      ? {
          id: call.id,
          type: 'function_call',
          status: 'completed',
          arguments: call.args,
          call_id: call.callId,
          name: call.name,
        }
      : {
          id: messageId,
          type: 'message',
          status: truncated ? 'incomplete' : 'completed',
          content: [part(text)],
          role: 'assistant',
        }
    const output = reasoningItem ? [reasoningItem, finalItem] : [finalItem]
    const usage = {
      input_tokens: promptTokens,
      input_tokens_details: { cached_tokens: cached },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: reasoningTokens },
      total_tokens: promptTokens + outputTokens,
    }
    const reasoning = (body.reasoning as Json | undefined) ?? {}
    const response = (state: string, out: Json[], u: unknown): Json => ({
      id,
      object: 'response',
      created_at: Math.floor(deps.now() / 1000),
      status: state,
      background: body.background === true,
      error: null,
      incomplete_details: state === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      instructions,
      max_output_tokens: maxOut ?? null,
      max_tool_calls: null,
      model,
      output: out,
      parallel_tool_calls: body.parallel_tool_calls !== false,
      previous_response_id: previousId,
      prompt_cache_key: null,
      reasoning: { effort: reasoning.effort ?? null, summary: reasoning.summary ?? null },
      safety_identifier: null,
      service_tier: 'default',
      store: body.store !== false,
      temperature: typeof body.temperature === 'number' ? body.temperature : 1,
      text: { format: { type: 'text' }, verbosity: 'medium' },
      tool_choice: body.tool_choice ?? 'auto',
      tools,
      top_logprobs: 0,
      top_p: typeof body.top_p === 'number' ? body.top_p : 1,
      truncation: 'disabled',
      usage: u,
      user: null,
      metadata: (body.metadata as Json | undefined) ?? {},
    })
    const final = response(status, output, withUsage ? usage : null)
    if (body.store !== false) {
      stored.delete(id)
      stored.set(id, { response: final, inputItems: items, background: body.background === true })
      if (stored.size > MAX_STORED) stored.delete(stored.keys().next().value as string)
    }
    if (body.stream !== true) return deps.send(res, 200, final)

    let seq = 0
    const ev = (type: string, data: Json) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`
    const events = [
      ev('response.created', { response: response('in_progress', [], null) }),
      ev('response.in_progress', { response: response('in_progress', [], null) }),
    ]
    let index = 0
    if (reasoningItem) {
      events.push(ev('response.output_item.added', { output_index: index, item: reasoningItem }))
      events.push(ev('response.output_item.done', { output_index: index, item: reasoningItem }))
      index++
    }
    if (call) {
      const item = { ...finalItem, status: 'in_progress', arguments: '' }
      events.push(ev('response.output_item.added', { output_index: index, item }))
      for (const delta of pieces(call.args)) {
        events.push(
          ev('response.function_call_arguments.delta', { item_id: call.id, output_index: index, delta }),
        )
      }
      events.push(
        ev('response.function_call_arguments.done', {
          item_id: call.id,
          output_index: index,
          arguments: call.args,
        }),
      )
    } else {
      const at = { item_id: messageId, output_index: index, content_index: 0 }
      events.push(
        ev('response.output_item.added', {
          output_index: index,
          item: { id: messageId, type: 'message', status: 'in_progress', content: [], role: 'assistant' },
        }),
        ev('response.content_part.added', { ...at, part: part('') }),
      )
      words.forEach((w, i) => {
        events.push(ev('response.output_text.delta', { ...at, delta: i === 0 ? w : ` ${w}`, logprobs: [] }))
      })
      events.push(
        ev('response.output_text.done', { ...at, text, logprobs: [] }),
        ev('response.content_part.done', { ...at, part: part(text) }),
      )
    }
    events.push(ev('response.output_item.done', { output_index: index, item: finalItem }))
    events.push(
      ev(status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final }),
    )
    await deps.streamEvents(res, events, b)
  }

  function inputItemsList(res: ServerResponse, entry: Stored, query: URLSearchParams) {
    const order = query.get('order') === 'asc' ? 'asc' : 'desc'
    const limit = Math.min(100, Math.max(1, Number(query.get('limit') ?? 20) || 20))
    let items = order === 'asc' ? [...entry.inputItems] : [...entry.inputItems].reverse()
    const after = query.get('after')
    if (after) items = items.slice(items.findIndex((i) => i.id === after) + 1)
    const data = items.slice(0, limit)
    deps.send(res, 200, {
      object: 'list',
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: items.length > limit,
    })
  }

  /** Handles /v1/responses and its companions; false when the method and path are none of them. */
  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
    body: Json | undefined,
  ): Promise<boolean> {
    if (path === '/v1/responses') {
      if (req.method !== 'POST') return false
      await create(req, res, body ?? {})
      return true
    }
    const [id, sub, ...rest] = path.slice('/v1/responses/'.length).split('/')
    if (!id || rest.length > 0) return false
    const entry = stored.get(id)
    const route = `${req.method} ${sub ?? ''}`
    if (route === 'GET ') {
      if (!entry) notFound(res, id)
      else deps.send(res, 200, entry.response)
    } else if (route === 'DELETE ') {
      if (!entry) notFound(res, id)
      else {
        stored.delete(id)
        deps.send(res, 200, { id, object: 'response', deleted: true })
      }
    } else if (route === 'POST cancel') {
      if (!entry) notFound(res, id)
      else if (!entry.background) error(res, 400, 'Cannot cancel a synchronous response.', null, null)
      else {
        entry.response = { ...entry.response, status: 'cancelled' }
        deps.send(res, 200, entry.response)
      }
    } else if (route === 'GET input_items') {
      if (!entry) notFound(res, id)
      else inputItemsList(res, entry, query)
    } else return false
    return true
  }

  return { route }
}
