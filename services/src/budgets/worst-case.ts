import type { ModelFacade } from '../core/identity/entities.ts'

type Json = Record<string, unknown>

/**
 * The most a request can cost before it is sent, from its body alone: what the
 * gateway reserves against every applicable budget (docs/BUDGETS.md states the
 * guarantee this gives and what it cannot see).
 *
 * Input: every byte of the body counts as one token. A BPE token is at least
 * one byte of UTF-8 text and JSON only adds bytes (quotes, keys, escapes), so
 * this bounds the text of messages, system prompt, tools and schemas together.
 * Content the body only points at cannot be bounded by its bytes: each image
 * part adds IMAGE_TOKEN_BOUND on top (its URL or base64 bytes are already
 * counted). Input is priced at the dearest input price of the model (plain,
 * cached read or cache write), since the body does not say which it will be.
 *
 * Output: the client's own cap times everything that multiplies it: `n`
 * choices (chat), `best_of`/`n` per prompt (legacy completions), the Anthropic
 * thinking budget on top of `max_tokens`. Without a cap the output side is
 * BUDGET_DEFAULT_RESERVE_USD per choice.
 *
 * Fields are read by name, not by endpoint, so a new OpenAI-style route (the
 * Responses API's `max_output_tokens`) is covered without a change here.
 */

/**
 * Tokens one image part may cost, whatever its size: OpenAI's high-detail
 * patch models stop at 1,536 patches x 1.62 (about 2,490 tokens), Anthropic
 * resizes to about 1,600 tokens; 3,000 leaves room above both.
 */
export const IMAGE_TOKEN_BOUND = 3_000

/** Content part types that carry an image (OpenAI chat, Responses, Anthropic). */
const IMAGE_PARTS = new Set(['image_url', 'input_image', 'image'])

export interface WorstCase {
  /** Upper bound on input tokens, images included. */
  inputTokens: number
  /** Upper bound on output tokens, or undefined when the client set no output cap. */
  outputTokens: number | undefined
  /** How many outputs of that cap may be produced (choices x prompts). */
  outputs: number
  /** Images found in the body (each counted at IMAGE_TOKEN_BOUND). */
  images: number
}

const positiveInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined

/** Counts image parts anywhere in the body; depth-bounded so a hostile body cannot recurse us away. */
export function countImages(value: unknown, depth = 0): number {
  if (depth > 64 || value === null || typeof value !== 'object') return 0
  if (Array.isArray(value)) {
    let n = 0
    for (const v of value) n += countImages(v, depth + 1)
    return n
  }
  const o = value as Json
  let n = typeof o.type === 'string' && IMAGE_PARTS.has(o.type) ? 1 : 0
  for (const v of Object.values(o)) n += countImages(v, depth + 1)
  return n
}

/** Legacy completions: a prompt that is a list of strings or of token lists is several prompts. */
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1
  return typeof prompt[0] === 'number' ? 1 : prompt.length
}

/**
 * The output cap the client set and how many times it may be spent. `kind` is
 * the gateway's API kind; unknown kinds are read by field names.
 */
export function outputBound(kind: string, body: Json): { tokens: number | undefined; outputs: number } {
  if (kind === 'embeddings') return { tokens: 0, outputs: 1 }
  if (kind === 'messages') {
    // Extended thinking is billed as output and comes on top of the answer.
    const thinking = body.thinking as Json | null | undefined
    const budget = thinking && thinking.type !== 'disabled' ? (positiveInt(thinking.budget_tokens) ?? 0) : 0
    const max = positiveInt(body.max_tokens)
    return { tokens: max === undefined ? undefined : max + budget, outputs: 1 }
  }
  const cap =
    positiveInt(body.max_output_tokens) ??
    positiveInt(body.max_completion_tokens) ??
    positiveInt(body.max_tokens)
  // best_of completions are generated (and billed) server-side, n of them returned.
  const choices = Math.max(positiveInt(body.n) ?? 1, positiveInt(body.best_of) ?? 1)
  const prompts = kind === 'completions' ? promptCount(body.prompt) : 1
  // The legacy completions API defaults max_tokens to 16.
  const tokens = cap ?? (kind === 'completions' ? 16 : undefined)
  return { tokens, outputs: choices * prompts }
}

export function worstCase(kind: string, body: Json, bodyBytes: number): WorstCase {
  const images = countImages(body)
  const out = outputBound(kind, body)
  return {
    inputTokens: bodyBytes + images * IMAGE_TOKEN_BOUND,
    outputTokens: out.tokens,
    outputs: out.outputs,
    images,
  }
}

/**
 * The reservation in nano-USD (prices are USD per million tokens, so tokens x
 * price x 1e3 is nano-USD). Never NaN: a request without an output cap holds
 * `defaultReserveUsd` per output on top of its input bound.
 */
export function worstCaseNanos(
  w: WorstCase,
  price: Pick<ModelFacade, 'inputPerM' | 'outputPerM' | 'cachedReadPerM' | 'cacheWritePerM'>,
  defaultReserveUsd: number,
): number {
  const inputPrice = Math.max(price.inputPerM, price.cachedReadPerM, price.cacheWritePerM)
  const input = w.inputTokens * inputPrice * 1e3
  const output =
    w.outputTokens === undefined
      ? defaultReserveUsd * 1e9 * w.outputs
      : w.outputTokens * w.outputs * price.outputPerM * 1e3
  // Absurd multipliers (n = 2^31 and the like) stay a number a counter can hold: the cap refuses it.
  const nanos = Math.ceil(input + output)
  return Number.isSafeInteger(nanos) ? nanos : Number.MAX_SAFE_INTEGER
}
