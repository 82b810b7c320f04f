/**
 * Usage numbers from an upstream are data we did not make: a provider bug or a
 * hostile OpenAI-compatible upstream can send 1e308, -5 or 1e999 (Infinity
 * once parsed). Every count is brought into [0, TOKEN_COUNT_BOUND] before it
 * is priced, stored or settled against a budget, so the row is always
 * recordable (the token columns are UInt32) and its cost always finite. A
 * request that needed this is kept, flagged `tokens_estimated` (its numbers are
 * ours, not the provider's), logged and counted (tokenmeter_usage_sanitized_total).
 */

/** 10^9 tokens: far above any context window today, below UInt32's 4.29e9. */
export const TOKEN_COUNT_BOUND = 1_000_000_000

/** Why a value was changed; the label of the metric. */
export type ClampReason = 'not_finite' | 'negative' | 'too_large' | 'not_integer'

export interface Clamp {
  field: string
  reason: ClampReason
}

/** One count brought into range; `reason` says what was wrong, if anything. */
export function clampCount(v: number): { value: number; reason?: ClampReason } {
  if (Number.isNaN(v)) return { value: 0, reason: 'not_finite' }
  // +Infinity is "more than we can count": the bound, like any other huge number.
  if (v === Number.POSITIVE_INFINITY) return { value: TOKEN_COUNT_BOUND, reason: 'not_finite' }
  if (v < 0) return { value: 0, reason: v === Number.NEGATIVE_INFINITY ? 'not_finite' : 'negative' }
  if (v > TOKEN_COUNT_BOUND) return { value: TOKEN_COUNT_BOUND, reason: 'too_large' }
  if (!Number.isInteger(v)) return { value: Math.floor(v), reason: 'not_integer' }
  return { value: v }
}

/**
 * Clamps every number in a provider's usage block in place (nested detail
 * objects included, two levels deep as OpenAI and Anthropic nest them) and
 * returns what it changed. Non-numbers are left for the reader to ignore.
 */
export function sanitizeUsageBlock(usage: Record<string, unknown>, prefix = '', depth = 0): Clamp[] {
  const out: Clamp[] = []
  for (const [k, v] of Object.entries(usage)) {
    if (typeof v === 'number') {
      const c = clampCount(v)
      if (c.reason) {
        usage[k] = c.value
        out.push({ field: prefix + k, reason: c.reason })
      }
    } else if (v && typeof v === 'object' && !Array.isArray(v) && depth < 2) {
      out.push(...sanitizeUsageBlock(v as Record<string, unknown>, `${prefix}${k}.`, depth + 1))
    }
  }
  return out
}

/**
 * The last line of defence, on the captured counts themselves (any API shape,
 * including ones whose reader does not call sanitizeUsageBlock).
 */
export function sanitizeCounts<T extends object>(counts: T, fields: readonly (keyof T & string)[]): Clamp[] {
  const out: Clamp[] = []
  for (const f of fields) {
    const v = counts[f]
    if (typeof v !== 'number') continue
    const c = clampCount(v)
    if (c.reason) {
      ;(counts as Record<string, unknown>)[f] = c.value
      out.push({ field: f, reason: c.reason })
    }
  }
  return out
}
