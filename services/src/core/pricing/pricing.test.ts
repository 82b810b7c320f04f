import { describe, expect, it } from 'vitest'
import { costNanos, nanosToUsdString } from './pricing.ts'

const price = {
  model: 'm',
  provider: 'openai' as const,
  upstreamModel: 'm',
  inputPerM: 2.5,
  outputPerM: 10,
  cachedReadPerM: 1.25,
  cacheWritePerM: 3.75,
}

describe('costNanos', () => {
  it('prices each token kind at its own per-million rate', () => {
    // 1000 x 2.5 + 500 x 10 + 200 x 1.25 + 100 x 3.75 = 8125 USD per 1e6 tokens
    expect(costNanos({ input: 1000, output: 500, cachedRead: 200, cacheWrite: 100 }, price)).toBe(8_125_000)
  })
  it('rounds fractional nano-USD to the nearest', () => {
    expect(
      costNanos({ input: 1, output: 0, cachedRead: 0, cacheWrite: 0 }, { ...price, inputPerM: 0.0015 }),
    ).toBe(2)
  })
})

describe('nanosToUsdString', () => {
  it('formats with exactly nine decimals', () => {
    expect(nanosToUsdString(8_125_000)).toBe('0.008125000')
    expect(nanosToUsdString(12_345_678_901)).toBe('12.345678901')
    expect(nanosToUsdString(0)).toBe('0.000000000')
  })
})
