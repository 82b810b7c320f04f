export interface TokenCounts {
  input: number
  output: number
  cachedRead: number
  cacheWrite: number
  /**
   * Reasoning (thinking) tokens: a part of `output`, never in addition to it.
   * OpenAI counts them in completion_tokens / output_tokens and Anthropic in
   * output_tokens, and both bill them at the output rate.
   */
  reasoning?: number
}

/** USD per million tokens, as a facade or the catalogue gives them. */
export interface Prices {
  inputPerM: number
  outputPerM: number
  cachedReadPerM: number
  cacheWritePerM: number
}

/**
 * Cost in integer nano-USD (1e-9 USD). Prices are USD per million tokens, so
 * tokens x price / 1e6 USD = tokens x price x 1e3 nano-USD. `input` counts
 * only uncached input; cached reads and cache writes are priced separately.
 * Reasoning tokens are already inside `output` and billed with it, so they
 * add nothing here (adding them would count them twice).
 */
export function costNanos(tokens: TokenCounts, price: Prices): number {
  const nanos =
    tokens.input * price.inputPerM * 1e3 +
    tokens.output * price.outputPerM * 1e3 +
    tokens.cachedRead * price.cachedReadPerM * 1e3 +
    tokens.cacheWrite * price.cacheWritePerM * 1e3
  return Math.round(nanos)
}

/** Exact decimal string with nine places, as the cost_usd column expects. */
export function nanosToUsdString(nanos: number): string {
  const n = BigInt(Math.round(nanos))
  const whole = n / 1_000_000_000n
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0')
  return `${whole}.${frac}`
}
