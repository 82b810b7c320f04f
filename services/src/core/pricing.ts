import type { ModelFacade } from './entities.ts'

export interface TokenCounts {
  input: number
  output: number
  cachedRead: number
  cacheWrite: number
}

/**
 * Cost in integer nano-USD (1e-9 USD). Prices are USD per million tokens, so
 * tokens x price / 1e6 USD = tokens x price x 1e3 nano-USD. `input` counts
 * only uncached input; cached reads and cache writes are priced separately.
 */
export function costNanos(tokens: TokenCounts, price: ModelFacade): number {
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
