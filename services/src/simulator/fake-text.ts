import { createHash } from 'node:crypto'

/**
 * The fake provider's deterministic "model": replies, token counts and tool
 * arguments as pure functions of the request, so tests can predict them.
 */
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

/** Tokens of a JSON text (tool definitions, tool-call arguments): about four characters each. */
export const jsonTokens = (text: string): number => (text.length === 0 ? 0 : Math.ceil(text.length / 4))

export function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    let s = ''
    for (const part of content) {
      if (!part || typeof part !== 'object') continue
      const p = part as Json
      if (typeof p.text === 'string') s += p.text
      else if (typeof p.content === 'string') s += p.content
      else if (Array.isArray(p.content)) s += textOf(p.content)
    }
    return s
  }
  return ''
}

export function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex')
}

/** The reply: 8..48 words picked from the prompt's hash, cut at max_tokens; one word is one token. */
export function replyWords(
  seed: string,
  maxTokens: number | undefined,
): { words: string[]; truncated: boolean } {
  const h = Buffer.from(seed.slice(0, 32), 'hex')
  const natural = 8 + (h[0]! % 41)
  const n = maxTokens !== undefined ? Math.min(natural, Math.max(1, maxTokens)) : natural
  const words: string[] = []
  for (let i = 0; i < n; i++) words.push(VOCAB[h[(i + 1) % h.length]! % VOCAB.length]!)
  return { words, truncated: n < natural }
}

/** Arguments for a tool call, filled from the tool's JSON schema with values taken from the seed. */
export function toolArguments(schema: unknown, seed: string): string {
  const props = ((schema as Json | undefined)?.properties ?? {}) as Record<string, Json>
  const h = Buffer.from(seed.slice(0, 32), 'hex')
  const out: Json = {}
  let i = 0
  for (const [name, p] of Object.entries(props)) {
    const b = h[i++ % h.length]!
    const type = Array.isArray(p?.type) ? p.type[0] : p?.type
    if (Array.isArray(p?.enum) && p.enum.length > 0) out[name] = p.enum[b % p.enum.length]
    else if (type === 'integer' || type === 'number') out[name] = b % 100
    else if (type === 'boolean') out[name] = b % 2 === 0
    else if (type === 'array') out[name] = [VOCAB[b % VOCAB.length]]
    else if (type === 'object') out[name] = {}
    else out[name] = VOCAB[b % VOCAB.length]
  }
  return JSON.stringify(out)
}

/** Splits a text into stream pieces of at most `size` characters. */
export function pieces(text: string, size = 8): string[] {
  const out: string[] = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

/** The texts of a Chat Completions or Messages prompt: system, then every message's content. */
export function messageTexts(body: Json): string[] {
  const out: string[] = []
  if (body.system !== undefined) out.push(textOf(body.system))
  if (Array.isArray(body.messages)) for (const m of body.messages) out.push(textOf((m as Json)?.content))
  return out
}
