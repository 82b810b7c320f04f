import { describe, expect, it } from 'vitest'
import { roundUsdToCents } from './cost-export.ts'

describe('roundUsdToCents', () => {
  it('rounds the exact decimal half-up to whole cents, in integer arithmetic', () => {
    expect(roundUsdToCents('25.163456789')).toBe('25.16')
    expect(roundUsdToCents('0.005')).toBe('0.01')
    expect(roundUsdToCents('0.004999999')).toBe('0.00')
    // 1.005 is 1.00499999... as a double; the string is exact.
    expect(roundUsdToCents('1.005')).toBe('1.01')
    expect(roundUsdToCents('0')).toBe('0.00')
    expect(roundUsdToCents('12')).toBe('12.00')
    expect(roundUsdToCents('123456789.995')).toBe('123456790.00')
    expect(roundUsdToCents('-0.004')).toBe('0.00')
    expect(roundUsdToCents('-2.345')).toBe('-2.35')
  })
})
