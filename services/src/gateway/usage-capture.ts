import { StringDecoder } from 'node:string_decoder'
import { type Clamp, sanitizeUsageBlock } from './usage-bounds.ts'

/**
 * The APIs the gateway forwards. `count_tokens` is forwarded like the others
 * but is not a model call: it is never billed or recorded.
 */
export type ApiKind = 'chat' | 'completions' | 'embeddings' | 'messages' | 'responses' | 'count_tokens'

/**
 * Token counts as the row stores them: `input` is uncached input only (OpenAI's
 * prompt_tokens / input_tokens minus cached_tokens; Anthropic's input_tokens as
 * is), so that input + cachedRead + cacheWrite is the whole prompt and each kind
 * has its price.
 */
export interface CapturedUsage {
  input: number
  output: number
  cachedRead: number
  cacheWrite: number
  /**
   * Reasoning (thinking) tokens as the provider reported them: OpenAI's
   * `*_tokens_details.reasoning_tokens`, Anthropic's
   * `output_tokens_details.thinking_tokens` where sent. A part of `output`
   * (providers already count and bill them there), kept apart for reporting.
   */
  reasoning: number
  /** The Responses API's response id (`resp_...`), to route its companions back to the same upstream. */
  responseId: string
  /** Some usage block was seen (input side / output side). */
  sawInput: boolean
  sawOutput: boolean
  /** Characters of generated text seen, for estimating output when there is no usage. */
  textChars: number
  /** Counts in the provider's usage blocks that were out of range and clamped (usage-bounds.ts). */
  clamps: Clamp[]
}

export function emptyUsage(): CapturedUsage {
  return {
    input: 0,
    output: 0,
    cachedRead: 0,
    cacheWrite: 0,
    reasoning: 0,
    responseId: '',
    sawInput: false,
    sawOutput: false,
    textChars: 0,
    clamps: [],
  }
}

type Json = Record<string, unknown>
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0)

/**
 * OpenAI usage in either naming: chat, completions and embeddings say
 * prompt/completion_tokens, the Responses API input/output_tokens. Both count
 * cached tokens inside the prompt figure, and reasoning inside the output one.
 */
function openaiUsage(u: Json, into: CapturedUsage) {
  into.clamps.push(...sanitizeUsageBlock(u))
  const responses = u.input_tokens !== undefined || u.output_tokens !== undefined
  const prompt = num(responses ? u.input_tokens : u.prompt_tokens)
  const inDetails = (responses ? u.input_tokens_details : u.prompt_tokens_details) as Json | null | undefined
  const outDetails = (responses ? u.output_tokens_details : u.completion_tokens_details) as
    | Json
    | null
    | undefined
  const cached = Math.min(prompt, num(inDetails?.cached_tokens))
  into.input = prompt - cached
  into.cachedRead = cached
  into.output = num(responses ? u.output_tokens : u.completion_tokens)
  into.reasoning = num(outDetails?.reasoning_tokens)
  into.sawInput = true
  into.sawOutput = true
}

/** Anthropic usage blocks are cumulative; a later block overrides the fields it carries. */
function anthropicUsage(u: Json, into: CapturedUsage) {
  into.clamps.push(...sanitizeUsageBlock(u))
  if (u.input_tokens !== undefined) {
    into.input = num(u.input_tokens)
    into.sawInput = true
  }
  if (u.cache_read_input_tokens !== undefined) into.cachedRead = num(u.cache_read_input_tokens)
  if (u.cache_creation_input_tokens !== undefined) into.cacheWrite = num(u.cache_creation_input_tokens)
  if (u.output_tokens !== undefined) {
    into.output = num(u.output_tokens)
    into.sawOutput = true
  }
  const details = u.output_tokens_details as Json | null | undefined
  if (details?.thinking_tokens !== undefined) into.reasoning = num(details.thinking_tokens)
}

/** Characters of generated text in Responses API output items (message text, tool-call arguments, reasoning summaries). */
function responseOutputChars(output: unknown): number {
  if (!Array.isArray(output)) return 0
  let n = 0
  for (const item of output as Json[]) {
    if (!item || typeof item !== 'object') continue
    if (typeof item.arguments === 'string') n += item.arguments.length
    n += contentChars(item.content) + contentChars(item.summary)
  }
  return n
}

function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length
  if (!Array.isArray(content)) return 0
  let n = 0
  for (const part of content) {
    if (part && typeof part === 'object') {
      const p = part as Json
      if (typeof p.text === 'string') n += p.text.length
      else if (typeof p.thinking === 'string') n += p.thinking.length
      else if (p.input !== undefined) n += JSON.stringify(p.input).length
    }
  }
  return n
}

/** Usage from a complete (non-streamed) JSON answer. */
export function usageFromBody(kind: ApiKind, body: Buffer, into: CapturedUsage): void {
  let json: Json
  try {
    json = JSON.parse(body.toString('utf8')) as Json
  } catch {
    // Not JSON (a proxy's HTML error page): it carries no usage; the row keeps the status.
    return
  }
  if (!json || typeof json !== 'object') return
  const u = json.usage as Json | undefined
  if (kind === 'responses') {
    if (typeof json.id === 'string') into.responseId = json.id
    if (u && typeof u === 'object') openaiUsage(u, into)
    into.textChars += responseOutputChars(json.output)
    return
  }
  if (kind === 'messages') {
    if (u && typeof u === 'object') anthropicUsage(u, into)
    into.textChars += contentChars(json.content)
    return
  }
  if (u && typeof u === 'object') {
    openaiUsage(u, into)
    if (kind === 'embeddings') into.sawOutput = true
  }
  if (kind === 'chat' && Array.isArray(json.choices)) {
    for (const c of json.choices as Json[]) {
      const m = c?.message as Json | undefined
      if (typeof m?.content === 'string') into.textChars += m.content.length
      if (Array.isArray(m?.tool_calls)) into.textChars += JSON.stringify(m.tool_calls).length
    }
  }
  if (kind === 'completions' && Array.isArray(json.choices)) {
    for (const c of json.choices as Json[]) if (typeof c?.text === 'string') into.textChars += c.text.length
  }
}

/**
 * Reads a copy of an SSE stream for usage while the bytes go to the client.
 *
 * In `stripInjectedUsage` mode (an OpenAI stream for which the gateway asked
 * `include_usage` on the client's behalf) it also returns the bytes to forward:
 * whole events, minus the usage-only chunk and minus the `"usage":null` the
 * upstream then adds to every other chunk, so the client gets exactly what it
 * would have got without the option. Otherwise `push` returns its input.
 */
export interface SseTap {
  push(chunk: Buffer): Buffer | undefined
  /** Anything held back when the upstream ends (an unterminated last event). */
  end(): Buffer | undefined
}

const USAGE_NULL_TAIL = ',"usage":null}'

export function createSseTap(kind: ApiKind, usage: CapturedUsage, stripInjectedUsage: boolean): SseTap {
  const decoder = new StringDecoder('utf8')
  let pending = ''

  /** Returns true for an OpenAI usage-only chunk (empty choices, usage set). */
  function onData(value: string): boolean {
    if (value.length === 0 || value === '[DONE]') return false
    let obj: Json
    try {
      obj = JSON.parse(value) as Json
    } catch {
      // Not a JSON event (a keep-alive comment, a provider's oddity): no usage in it.
      return false
    }
    if (kind === 'messages') {
      const type = obj.type
      if (type === 'content_block_delta') {
        const d = obj.delta as Json | undefined
        if (d) {
          if (typeof d.text === 'string') usage.textChars += d.text.length
          else if (typeof d.partial_json === 'string') usage.textChars += d.partial_json.length
          else if (typeof d.thinking === 'string') usage.textChars += d.thinking.length
        }
      } else if (type === 'message_start') {
        const u = (obj.message as Json | undefined)?.usage as Json | undefined
        if (u) {
          anthropicUsage(u, usage)
          // Its output_tokens is a placeholder; the count comes with message_delta.
          usage.sawOutput = false
        }
      } else if (type === 'message_delta') {
        const u = obj.usage as Json | undefined
        if (u) anthropicUsage(u, usage)
      }
      return false
    }
    if (kind === 'responses') {
      const type = obj.type
      if (typeof type !== 'string') return false
      if (type.endsWith('.delta')) {
        // output_text, function_call_arguments, reasoning_summary_text, refusal ... deltas
        if (typeof obj.delta === 'string') usage.textChars += obj.delta.length
      } else if (type === 'response.created') {
        const id = (obj.response as Json | undefined)?.id
        if (typeof id === 'string') usage.responseId = id
      } else if (
        type === 'response.completed' ||
        type === 'response.incomplete' ||
        type === 'response.failed'
      ) {
        const u = (obj.response as Json | undefined)?.usage as Json | null | undefined
        if (u && typeof u === 'object') openaiUsage(u, usage)
      }
      return false
    }
    const choices = obj.choices as Json[] | undefined
    if (Array.isArray(choices)) {
      for (const c of choices) {
        if (typeof c?.text === 'string') usage.textChars += c.text.length
        const d = c?.delta as Json | undefined
        if (typeof d?.content === 'string') usage.textChars += d.content.length
        if (Array.isArray(d?.tool_calls)) {
          for (const t of d.tool_calls as Json[]) {
            const args = (t?.function as Json | undefined)?.arguments
            if (typeof args === 'string') usage.textChars += args.length
          }
        }
      }
    }
    const u = obj.usage as Json | null | undefined
    if (u && typeof u === 'object') {
      openaiUsage(u, usage)
      return Array.isArray(choices) && choices.length === 0
    }
    return false
  }

  function dataValue(line: string): string | undefined {
    if (!line.startsWith('data:')) return undefined
    return line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5)
  }

  if (!stripInjectedUsage) {
    return {
      push(chunk) {
        pending += decoder.write(chunk)
        let nl = pending.indexOf('\n')
        while (nl >= 0) {
          const end = nl > 0 && pending.charCodeAt(nl - 1) === 13 ? nl - 1 : nl
          const value = dataValue(pending.slice(0, end))
          if (value !== undefined) onData(value)
          pending = pending.slice(nl + 1)
          nl = pending.indexOf('\n')
        }
        return chunk
      },
      end() {
        const value = dataValue(pending + decoder.end())
        if (value !== undefined) onData(value)
        pending = ''
        return undefined
      },
    }
  }

  // Event-at-a-time: an event is forwarded once its blank line has arrived.
  const boundary = /\r\n\r\n|\n\n|\r\r/g
  function transform(event: string): string {
    let drop = false
    let out = ''
    for (const piece of event.split(/(?<=\n)/)) {
      const bare = piece.replace(/\r?\n$/, '')
      const value = dataValue(bare)
      if (value === undefined) {
        out += piece
        continue
      }
      if (onData(value)) drop = true
      if (bare.endsWith(USAGE_NULL_TAIL)) {
        out += `${bare.slice(0, -USAGE_NULL_TAIL.length)}}${piece.slice(bare.length)}`
      } else out += piece
    }
    return drop ? '' : out
  }
  return {
    push(chunk) {
      pending += decoder.write(chunk)
      let out = ''
      let from = 0
      boundary.lastIndex = 0
      for (let m = boundary.exec(pending); m; m = boundary.exec(pending)) {
        const to = m.index + m[0].length
        out += transform(pending.slice(from, to))
        from = to
      }
      pending = pending.slice(from)
      return out.length > 0 ? Buffer.from(out, 'utf8') : undefined
    },
    end() {
      const rest = pending + decoder.end()
      pending = ''
      return rest.length > 0 ? Buffer.from(transform(rest), 'utf8') : undefined
    },
  }
}

/** Characters of a Responses API `input`: a string, or items (messages, tool calls and their outputs). */
function responseInputChars(input: unknown): number {
  if (typeof input === 'string') return input.length
  if (!Array.isArray(input)) return 0
  let n = 0
  for (const item of input as Json[]) {
    if (!item || typeof item !== 'object') continue
    n += contentChars(item.content)
    if (typeof item.arguments === 'string') n += item.arguments.length
    if (typeof item.output === 'string') n += item.output.length
  }
  return n
}

/** Prompt characters of a request, for the estimate when the upstream reports no usage. */
export function requestChars(kind: ApiKind, body: Json): number {
  if (kind === 'responses') {
    let n = responseInputChars(body.input)
    if (typeof body.instructions === 'string') n += body.instructions.length
    if (Array.isArray(body.tools)) n += JSON.stringify(body.tools).length
    return n
  }
  if (kind === 'completions') {
    const p = body.prompt
    if (typeof p === 'string') return p.length
    if (Array.isArray(p)) {
      let n = 0
      for (const i of p)
        n +=
          typeof i === 'string' ? i.length : typeof i === 'number' ? 4 : Array.isArray(i) ? i.length * 4 : 0
      return n
    }
    return 0
  }
  if (kind === 'embeddings') {
    const input = body.input
    if (typeof input === 'string') return input.length
    if (Array.isArray(input)) {
      let n = 0
      for (const i of input) n += typeof i === 'string' ? i.length : Array.isArray(i) ? i.length * 4 : 0
      return n
    }
    return 0
  }
  let n = 0
  if (body.system !== undefined) n += contentChars(body.system)
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) n += contentChars((m as Json | undefined)?.content)
  }
  if (Array.isArray(body.tools)) n += JSON.stringify(body.tools).length
  return n
}

/** The usual ~4 characters per token; never 0 for a non-empty text. */
export const estimateTokens = (chars: number): number => Math.ceil(chars / 4)
