import { describe, expect, it } from 'vitest'
import { clampCount, sanitizeCounts, sanitizeUsageBlock, TOKEN_COUNT_BOUND } from './usage-bounds.ts'

describe('usage bounds', () => {
  it('clamps every kind of bad count and says why', () => {
    expect(clampCount(1e308)).toEqual({ value: TOKEN_COUNT_BOUND, reason: 'too_large' })
    expect(clampCount(Number.POSITIVE_INFINITY)).toEqual({ value: TOKEN_COUNT_BOUND, reason: 'not_finite' })
    expect(clampCount(Number.NEGATIVE_INFINITY)).toEqual({ value: 0, reason: 'not_finite' })
    expect(clampCount(Number.NaN)).toEqual({ value: 0, reason: 'not_finite' })
    expect(clampCount(-5)).toEqual({ value: 0, reason: 'negative' })
    expect(clampCount(12.7)).toEqual({ value: 12, reason: 'not_integer' })
    expect(clampCount(TOKEN_COUNT_BOUND)).toEqual({ value: TOKEN_COUNT_BOUND })
    expect(clampCount(0)).toEqual({ value: 0 })
  })

  it('sanitises a usage block in place, nested details included', () => {
    // 1e999 is what JSON.parse turns into Infinity.
    const usage = JSON.parse(
      '{"prompt_tokens":1e308,"completion_tokens":-3,"total_tokens":1e999,"prompt_tokens_details":{"cached_tokens":2.5},"model":"x"}',
    )
    const clamps = sanitizeUsageBlock(usage)
    expect(usage).toEqual({
      prompt_tokens: TOKEN_COUNT_BOUND,
      completion_tokens: 0,
      total_tokens: TOKEN_COUNT_BOUND,
      prompt_tokens_details: { cached_tokens: 2 },
      model: 'x',
    })
    expect(clamps.map((c) => `${c.field}:${c.reason}`)).toEqual([
      'prompt_tokens:too_large',
      'completion_tokens:negative',
      'total_tokens:not_finite',
      'prompt_tokens_details.cached_tokens:not_integer',
    ])
  })

  it('a sane block is left alone', () => {
    const usage = { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 0 }
    expect(sanitizeUsageBlock(usage)).toEqual([])
    expect(usage).toEqual({ input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 0 })
  })

  it('clamps captured counts whatever reader produced them', () => {
    const counts = { input: 5e12, output: 3, flag: true }
    expect(sanitizeCounts(counts, ['input', 'output'])).toEqual([{ field: 'input', reason: 'too_large' }])
    expect(counts.input).toBe(TOKEN_COUNT_BOUND)
  })
})
