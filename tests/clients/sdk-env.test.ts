import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLAUDE_PRICES, type ClientStack, GPT_PRICES, startClientStack } from './client-stack.ts'
import { readmeEnv } from './readme-snippets.ts'

// The official SDKs configured only by the environment the README's "The
// official SDKs" section exports, as tools built on them are. This file owns
// its process (vitest runs files in forks), so setting process.env is local.

let cs: ClientStack

beforeAll(async () => {
  cs = await startClientStack()
  await cs.facade('gpt-4o-mini', 'openai', 'gpt-4o-mini', GPT_PRICES)
  await cs.facade('claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5', CLAUDE_PRICES)
})

afterAll(async () => {
  await cs?.close()
})

describe('official SDKs configured by environment only', () => {
  it('new OpenAI() and new Anthropic() with no options reach the gateway, one row each', async () => {
    const { key, keyId } = await cs.newKey('sdk-env')
    Object.assign(process.env, readmeEnv('The official SDKs', cs.url, key))
    const { result, sent } = await cs.capture(async () => {
      const openai = new OpenAI({ maxRetries: 0 })
      const anthropic = new Anthropic({ maxRetries: 0 })
      const chat = await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'Hello' }],
      })
      const stream = await openai.responses.create({ model: 'gpt-4o-mini', input: 'Hello', stream: true })
      let deltas = 0
      for await (const e of stream) if (e.type === 'response.output_text.delta') deltas++
      const message = await anthropic.messages.create({
        model: 'claude-sonnet-4-5',
        max_tokens: 64,
        messages: [{ role: 'user', content: 'Hello' }],
      })
      return { chat, deltas, message }
    })
    expect(result.chat.choices[0]?.message.content?.length).toBeGreaterThan(0)
    expect(result.deltas).toBeGreaterThan(1)
    expect(result.message.content[0]?.type).toBe('text')
    expect(sent.map((s) => s.path)).toEqual(['/v1/chat/completions', '/v1/responses', '/v1/messages'])
    await cs.expectOneRowPerBilledRequest(keyId, sent)
  })
})
