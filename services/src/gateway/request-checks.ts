import type { ApiKind } from './usage-capture.ts'

type Json = Record<string, unknown>

const isPositiveInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0
const optionalPositiveInt = (v: unknown) => v === undefined || v === null || isPositiveInt(v)

/**
 * What the upstream API would reject outright, checked here so that nothing is
 * forwarded (and nothing billed) for it. Deliberately shallow: the upstream
 * remains the judge of everything else, and its 4xx passes through. Returns a
 * message saying what to fix, or undefined when the body may go.
 */
export function checkBody(kind: ApiKind, body: unknown): string | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    return 'The request body must be a JSON object.'
  const b = body as Json
  if (typeof b.model !== 'string' || b.model.length === 0) return '`model` is required and must be a string.'
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') {
    return '`stream` must be true or false.'
  }
  if (kind === 'embeddings') {
    const input = b.input
    const ok =
      (typeof input === 'string' && input.length > 0) ||
      (Array.isArray(input) && input.length > 0 && input.length <= 2048)
    return ok ? undefined : '`input` is required: a non-empty string or an array of up to 2048 inputs.'
  }
  if (kind === 'responses') {
    // `input` may be left out when previous_response_id or a stored prompt carries the conversation.
    if (b.input !== undefined && typeof b.input !== 'string' && !Array.isArray(b.input)) {
      return '`input` must be a string or an array of input items.'
    }
    if (!optionalPositiveInt(b.max_output_tokens)) return '`max_output_tokens` must be a positive integer.'
    return undefined
  }
  if (kind === 'completions') {
    const p = b.prompt
    if (p !== undefined && typeof p !== 'string' && !Array.isArray(p)) {
      return '`prompt` must be a string, an array of strings or an array of token arrays.'
    }
    if (!optionalPositiveInt(b.max_tokens)) return '`max_tokens` must be a positive integer.'
    // The budget reserves max_tokens x max(n, best_of) per prompt: each must be readable.
    if (!optionalPositiveInt(b.n)) return '`n` (completions per prompt) must be a positive integer.'
    if (!optionalPositiveInt(b.best_of)) return '`best_of` must be a positive integer.'
    return undefined
  }
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    return '`messages` is required and must be a non-empty array.'
  }
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i] as Json | null
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') {
      return `\`messages[${i}]\` must be an object with a string \`role\`.`
    }
  }
  if (kind === 'messages') {
    if (!isPositiveInt(b.max_tokens)) return '`max_tokens` is required and must be a positive integer.'
    const thinking = b.thinking as Json | null | undefined
    if (
      thinking !== undefined &&
      thinking !== null &&
      (typeof thinking !== 'object' || Array.isArray(thinking))
    ) {
      return '`thinking` must be an object such as {"type":"enabled","budget_tokens":2048}.'
    }
    if (thinking?.type === 'enabled' && !isPositiveInt(thinking.budget_tokens)) {
      return '`thinking.budget_tokens` is required with thinking enabled and must be a positive integer.'
    }
    return undefined
  }
  if (kind === 'count_tokens') return undefined
  if (!optionalPositiveInt(b.max_tokens)) return '`max_tokens` must be a positive integer.'
  // The budget reserves for every choice: a multiplier it cannot read would be a way around it.
  if (!optionalPositiveInt(b.n)) return '`n` (number of choices) must be a positive integer.'
  if (!optionalPositiveInt(b.best_of)) return '`best_of` must be a positive integer.'
  if (!optionalPositiveInt(b.max_output_tokens)) return '`max_output_tokens` must be a positive integer.'
  if (!optionalPositiveInt(b.max_completion_tokens))
    return '`max_completion_tokens` must be a positive integer.'
  if (b.stream_options !== undefined && b.stream_options !== null && typeof b.stream_options !== 'object') {
    return '`stream_options` must be an object.'
  }
  return undefined
}
