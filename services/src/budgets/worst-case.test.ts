import { describe, expect, it } from 'vitest'
import { countImages, IMAGE_TOKEN_BOUND, outputBound, worstCase, worstCaseNanos } from './worst-case.ts'

const PRICE = { inputPerM: 1, outputPerM: 10, cachedReadPerM: 0.5, cacheWritePerM: 1.25 }
const bytes = (b: object) => Buffer.byteLength(JSON.stringify(b))

describe('worst case of a request', () => {
  it('multiplies the chat output cap by n, max_completion_tokens first', () => {
    const body = { model: 'm', messages: [], max_tokens: 100, n: 8 }
    expect(outputBound('chat', body)).toEqual({ tokens: 100, outputs: 8 })
    expect(outputBound('chat', { ...body, max_completion_tokens: 50 })).toEqual({ tokens: 50, outputs: 8 })
    // Not a positive integer: the upstream refuses it; n defaults to one.
    expect(outputBound('chat', { ...body, n: 0 })).toEqual({ tokens: 100, outputs: 1 })
  })

  it('legacy completions: best_of or n per prompt, max_tokens defaulting to 16', () => {
    expect(outputBound('completions', { prompt: 'hi', best_of: 5, n: 2 })).toEqual({ tokens: 16, outputs: 5 })
    expect(outputBound('completions', { prompt: ['a', 'b', 'c'], n: 2, max_tokens: 7 })).toEqual({
      tokens: 7,
      outputs: 6,
    })
    // A list of token ids is one prompt; a list of such lists is several.
    expect(outputBound('completions', { prompt: [1, 2, 3], max_tokens: 7 }).outputs).toBe(1)
    expect(outputBound('completions', { prompt: [[1], [2]], max_tokens: 7 }).outputs).toBe(2)
  })

  it('Responses max_output_tokens, read by field name for any OpenAI-style kind', () => {
    expect(outputBound('responses', { input: 'x', max_output_tokens: 300 })).toEqual({
      tokens: 300,
      outputs: 1,
    })
    expect(outputBound('responses', { input: 'x' })).toEqual({ tokens: undefined, outputs: 1 })
  })

  it('Anthropic: max_tokens plus the extended thinking budget', () => {
    const body = { max_tokens: 1000, thinking: { type: 'enabled', budget_tokens: 4000 } }
    expect(outputBound('messages', body)).toEqual({ tokens: 5000, outputs: 1 })
    expect(outputBound('messages', { ...body, thinking: { type: 'disabled' } }).tokens).toBe(1000)
    // n is not an Anthropic parameter and does not multiply anything there.
    expect(outputBound('messages', { max_tokens: 10, n: 5 })).toEqual({ tokens: 10, outputs: 1 })
  })

  it('embeddings produce no output', () => {
    expect(outputBound('embeddings', { input: 'x' })).toEqual({ tokens: 0, outputs: 1 })
  })

  it('input: every body byte a token, plus a bound per image part in any API shape', () => {
    const body = {
      model: 'm',
      system: 'you are terse',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is in these?' },
            { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/b.png' } },
          ],
        },
      ],
      input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/c.png' }] }],
      max_tokens: 10,
    }
    expect(countImages(body)).toBe(3)
    const w = worstCase('chat', body, bytes(body))
    expect(w.inputTokens).toBe(bytes(body) + 3 * IMAGE_TOKEN_BOUND)
    // More tokens than any tokenizer makes of the text: one per byte.
    expect(w.inputTokens).toBeGreaterThan(JSON.stringify(body).length)
  })

  it('prices input at the dearest input price and output per choice', () => {
    const w = { inputTokens: 1000, outputTokens: 100, outputs: 4, images: 0 }
    // 1000 x 1.25 $/M + 400 x 10 $/M = 0.00125 + 0.004 USD
    expect(worstCaseNanos(w, PRICE, 0.5)).toBe(1_250_000 + 4_000_000)
  })

  it('without an output cap, holds the default reserve per choice on top of the input', () => {
    const w = { inputTokens: 1000, outputTokens: undefined, outputs: 3, images: 0 }
    expect(worstCaseNanos(w, PRICE, 0.5)).toBe(1_250_000 + 3 * 500_000_000)
  })

  it('absurd multipliers stay a finite number the cap refuses', () => {
    const body = { max_tokens: 2 ** 31, n: 2 ** 31 }
    const nanos = worstCaseNanos(worstCase('chat', body, 50), { ...PRICE, outputPerM: 1e6 }, 0.5)
    expect(nanos).toBe(Number.MAX_SAFE_INTEGER)
  })

  it('a deeply nested body is walked to a bounded depth', () => {
    let deep: object = { type: 'image_url' }
    for (let i = 0; i < 10_000; i++) deep = { x: deep }
    expect(countImages(deep)).toBe(0)
  })
})
