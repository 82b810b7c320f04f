import { describe, expect, it } from 'vitest'
import { createSseTap, emptyUsage, requestChars, usageFromBody } from './usage-capture.ts'

const json = (v: unknown) => Buffer.from(JSON.stringify(v))
const sse = (events: object[]) =>
  Buffer.from(events.map((e) => `event: x\ndata: ${JSON.stringify(e)}\n\n`).join(''))

describe('usage capture', () => {
  it('chat completions: cached tokens out of input, reasoning kept apart (a part of output)', () => {
    const u = emptyUsage()
    usageFromBody(
      'chat',
      json({
        choices: [{ message: { content: 'hi' } }],
        usage: {
          prompt_tokens: 100,
          completion_tokens: 50,
          prompt_tokens_details: { cached_tokens: 40 },
          completion_tokens_details: { reasoning_tokens: 30 },
        },
      }),
      u,
    )
    expect([u.input, u.cachedRead, u.output, u.reasoning]).toEqual([60, 40, 50, 30])
  })

  it('Responses API body: input_tokens minus cached, reasoning, response id', () => {
    const u = emptyUsage()
    usageFromBody(
      'responses',
      json({
        id: 'resp_1',
        output: [
          { type: 'function_call', arguments: '{"a":1}' },
          { type: 'message', content: [{ type: 'output_text', text: 'abcd' }] },
        ],
        usage: {
          input_tokens: 20,
          input_tokens_details: { cached_tokens: 5 },
          output_tokens: 9,
          output_tokens_details: { reasoning_tokens: 4 },
        },
      }),
      u,
    )
    expect([u.input, u.cachedRead, u.output, u.reasoning, u.responseId]).toEqual([15, 5, 9, 4, 'resp_1'])
    expect(u.textChars).toBe('{"a":1}'.length + 4)
  })

  it('Responses API stream: usage from response.incomplete as from response.completed; text from deltas', () => {
    for (const final of ['response.completed', 'response.incomplete']) {
      const u = emptyUsage()
      const tap = createSseTap('responses', u, false)
      const bytes = sse([
        { type: 'response.created', response: { id: 'resp_2', usage: null } },
        { type: 'response.output_text.delta', delta: 'hello' },
        { type: 'response.function_call_arguments.delta', delta: '{"x"' },
        {
          type: final,
          response: {
            id: 'resp_2',
            usage: { input_tokens: 7, input_tokens_details: { cached_tokens: 0 }, output_tokens: 3 },
          },
        },
      ])
      // Split mid-event: the tap must not care where chunks break.
      expect(tap.push(bytes.subarray(0, 50))).toEqual(bytes.subarray(0, 50))
      tap.push(bytes.subarray(50))
      tap.end()
      expect([u.input, u.output, u.reasoning, u.responseId, u.textChars]).toEqual([7, 3, 0, 'resp_2', 9])
      expect([u.sawInput, u.sawOutput]).toEqual([true, true])
    }
  })

  it('Anthropic thinking tokens where the usage block reports them', () => {
    const u = emptyUsage()
    usageFromBody(
      'messages',
      json({
        content: [{ type: 'thinking', thinking: 'hmm' }],
        usage: { input_tokens: 10, output_tokens: 40, output_tokens_details: { thinking_tokens: 25 } },
      }),
      u,
    )
    expect([u.input, u.output, u.reasoning, u.textChars]).toEqual([10, 40, 25, 3])
  })

  it('legacy completions: text of choices, prompt for the estimate', () => {
    const u = emptyUsage()
    usageFromBody('completions', json({ choices: [{ text: 'abcdef' }] }), u)
    expect([u.sawInput, u.textChars]).toEqual([false, 6])
    expect(requestChars('completions', { prompt: ['ab', 'cde'] })).toBe(5)
    expect(
      requestChars('responses', {
        instructions: 'xy',
        input: [
          { role: 'user', content: 'abc' },
          { type: 'function_call_output', output: 'defg' },
        ],
      }),
    ).toBe(9)
  })
})
