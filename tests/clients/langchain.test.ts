import { ChatAnthropic } from '@langchain/anthropic'
import type { BaseChatModel } from '@langchain/core/language_models/chat_models'
import { HumanMessage } from '@langchain/core/messages'
import { tool } from '@langchain/core/tools'
import { ChatOpenAI } from '@langchain/openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  CLAUDE_PRICES,
  type ClientStack,
  GPT_PRICES,
  type Json,
  type Received,
  startClientStack,
} from './client-stack.ts'
import { toolCallIn, toolExchangeIn } from './tool-calls.ts'

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

/**
 * Text, streamed text, then a turn where the model calls the tool, the tool
 * runs, and its result goes back: four provider requests.
 */
async function exercise(model: BaseChatModel) {
  const invoked = await model.invoke(PROMPT)
  const chunks: string[] = []
  for await (const c of await model.stream(PROMPT)) {
    const t = typeof c.content === 'string' ? c.content : c.text
    if (t) chunks.push(t)
  }
  const withTools = model.bindTools!([weather])
  const question = new HumanMessage('What is the weather in Oslo? Use the tool.')
  const asked = await withTools.invoke([question])
  const call = asked.tool_calls![0]!
  const answer = await withTools.invoke([question, asked, await weather.invoke(call)])
  return { invoked, chunks, asked, answer }
}

type Result = Awaited<ReturnType<typeof exercise>>

async function expectExercise(result: Result, sent: Received[]) {
  expect(sent).toHaveLength(4)
  expect(result.invoked.text.length).toBeGreaterThan(0)
  // One provider chunk per word: a buffered answer would come as one piece.
  expect(result.chunks.length).toBeGreaterThan(1)
  expect(sent[1]!.body?.stream).toBe(true)
  const called = toolCallIn(sent[2]!.path, await cs.replay(sent[2]!))
  expect(result.asked.tool_calls!.map((c) => [c.id, c.name, c.args])).toEqual([
    [called.id, 'weather', JSON.parse(called.arguments)],
  ])
  const city = (JSON.parse(called.arguments) as { city: string }).city
  expect(toolExchangeIn(sent[3]!.path, sent[3]!.body as Json)).toEqual({
    call: called,
    output: JSON.stringify({ city, celsius: -3 }),
  })
  expect(result.answer.text.length).toBeGreaterThan(0)
}

describe('LangChain JS through the gateway', () => {
  for (const useResponsesApi of [false, true]) {
    const path = useResponsesApi ? '/v1/responses' : '/v1/chat/completions'
    it(`ChatOpenAI${useResponsesApi ? ' with useResponsesApi' : ''} (${path}): invoke, stream, tool call both ways, one row each`, async () => {
      const { key, keyId } = await cs.newKey(`langchain-openai-${useResponsesApi}`)
      const model = new ChatOpenAI({
        model: 'gpt-4o-mini',
        apiKey: key,
        maxRetries: 0,
        useResponsesApi,
        configuration: { baseURL: `${cs.url}/v1`, defaultHeaders: { 'x-client-app': 'langchain' } },
      })
      const { result, sent } = await cs.capture(() => exercise(model))
      expect(sent.map((s) => s.path)).toEqual(Array(4).fill(path))
      await expectExercise(result, sent)
      const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
      expect(rows.map((r) => [r.model, r.endpoint, r.client_app])).toEqual(
        Array(4).fill(['gpt-4o-mini', path, 'langchain']),
      )
      expect(result.invoked.usage_metadata?.output_tokens).toBe(rows[0]!.output_tokens)
    })
  }

  it('ChatAnthropic: invoke, stream, tool_use both ways, one row each', async () => {
    const { key, keyId } = await cs.newKey('langchain-anthropic')
    const model = new ChatAnthropic({
      model: 'claude-sonnet-4-5',
      apiKey: key,
      maxRetries: 0,
      anthropicApiUrl: cs.url,
      clientOptions: { defaultHeaders: { 'x-client-app': 'langchain' } },
    })
    const { result, sent } = await cs.capture(() => exercise(model))
    expect(sent.map((s) => s.path)).toEqual(Array(4).fill('/v1/messages'))
    await expectExercise(result, sent)
    const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app])).toEqual(
      Array(4).fill(['claude-sonnet-4-5', '/v1/messages', 'langchain']),
    )
    expect(result.invoked.usage_metadata?.output_tokens).toBe(rows[0]!.output_tokens)
  })
})
