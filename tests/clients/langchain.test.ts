import { ChatAnthropic } from '@langchain/anthropic'
import type { BaseChatModel } from '@langchain/core/language_models/chat_models'
import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages'
import { tool } from '@langchain/core/tools'
import { ChatOpenAI } from '@langchain/openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { CLAUDE_PRICES, type ClientStack, GPT_PRICES, startClientStack } from './client-stack.ts'

// LangChain JS chat models configured as the README says: base URL and key.

let cs: ClientStack

beforeAll(async () => {
  cs = await startClientStack()
  await cs.facade('gpt-4o-mini', 'openai', 'gpt-4o-mini', GPT_PRICES)
  await cs.facade('claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5', CLAUDE_PRICES)
})

afterAll(async () => {
  await cs?.close()
})

const PROMPT = 'Which rollup answers a 30-day query fastest?'

const weather = tool(async ({ city }) => JSON.stringify({ city, celsius: -3 }), {
  name: 'weather',
  description: 'Current weather in a city',
  schema: z.object({ city: z.string() }),
})

/** The model already asked for the tool; this turn carries its result back. */
const TOOL_CONVERSATION = [
  new HumanMessage('What is the weather in Oslo?'),
  new AIMessage({
    content: '',
    tool_calls: [{ id: 'call_oslo_1', name: 'weather', args: { city: 'Oslo' } }],
  }),
  new ToolMessage({ tool_call_id: 'call_oslo_1', content: '{"city":"Oslo","celsius":-3}' }),
]

async function exercise(model: BaseChatModel) {
  const invoked = await model.invoke(PROMPT)
  const chunks: string[] = []
  for await (const c of await model.stream(PROMPT))
    if (typeof c.content === 'string' && c.content) chunks.push(c.content)
  const withTool = await model.bindTools!([weather]).invoke(TOOL_CONVERSATION)
  return { invoked, chunks, withTool }
}

describe('LangChain JS through the gateway', () => {
  it('ChatOpenAI (chat completions): invoke, stream, tool call and result forwarded intact, one row each', async () => {
    const { key, keyId } = await cs.newKey('langchain-openai')
    const model = new ChatOpenAI({
      model: 'gpt-4o-mini',
      apiKey: key,
      maxRetries: 0,
      configuration: { baseURL: `${cs.url}/v1`, defaultHeaders: { 'x-client-app': 'langchain' } },
    })
    const { result, sent } = await cs.capture(() => exercise(model))
    expect(sent.map((s) => s.path)).toEqual(Array(3).fill('/v1/chat/completions'))
    expect(String(result.invoked.content).length).toBeGreaterThan(0)
    expect(result.chunks.length).toBeGreaterThan(1)
    expect(sent[1]!.body?.stream).toBe(true)
    const messages = sent[2]!.body?.messages as Record<string, unknown>[]
    expect(messages.at(-2)).toMatchObject({
      role: 'assistant',
      tool_calls: [
        { id: 'call_oslo_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
      ],
    })
    expect(messages.at(-1)).toMatchObject({
      role: 'tool',
      tool_call_id: 'call_oslo_1',
      content: '{"city":"Oslo","celsius":-3}',
    })
    expect(sent[2]!.body?.tools).toMatchObject([{ type: 'function', function: { name: 'weather' } }])

    const rows = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app, r.streamed])).toEqual([
      ['gpt-4o-mini', '/v1/chat/completions', 'langchain', false],
      ['gpt-4o-mini', '/v1/chat/completions', 'langchain', true],
      ['gpt-4o-mini', '/v1/chat/completions', 'langchain', false],
    ])
    expect(result.invoked.usage_metadata?.output_tokens).toBe(rows[0]!.output_tokens)
  })

  it('ChatAnthropic: invoke, stream, tool_use and tool_result forwarded intact, one row each', async () => {
    const { key, keyId } = await cs.newKey('langchain-anthropic')
    const model = new ChatAnthropic({
      model: 'claude-sonnet-4-5',
      apiKey: key,
      maxRetries: 0,
      anthropicApiUrl: cs.url,
      clientOptions: { defaultHeaders: { 'x-client-app': 'langchain' } },
    })
    const { result, sent } = await cs.capture(() => exercise(model))
    expect(sent.map((s) => s.path)).toEqual(Array(3).fill('/v1/messages'))
    expect(String(result.invoked.content).length).toBeGreaterThan(0)
    expect(result.chunks.length).toBeGreaterThan(1)
    expect(sent[1]!.body?.stream).toBe(true)
    const messages = sent[2]!.body?.messages as Record<string, unknown>[]
    expect(messages.at(-2)).toMatchObject({
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'call_oslo_1', name: 'weather', input: { city: 'Oslo' } }],
    })
    expect(messages.at(-1)).toMatchObject({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'call_oslo_1', content: '{"city":"Oslo","celsius":-3}' }],
    })
    expect(sent[2]!.body?.tools).toMatchObject([{ name: 'weather' }])

    const rows = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app, r.streamed])).toEqual([
      ['claude-sonnet-4-5', '/v1/messages', 'langchain', false],
      ['claude-sonnet-4-5', '/v1/messages', 'langchain', true],
      ['claude-sonnet-4-5', '/v1/messages', 'langchain', false],
    ])
    expect(result.invoked.usage_metadata?.output_tokens).toBe(rows[0]!.output_tokens)
  })

  // Needs POST /v1/responses in the gateway and the fake provider (branch w12-api).
  it.todo('ChatOpenAI with useResponsesApi: invoke, stream, tool call, one row each')
})
