import { Agent, OpenAIProvider, Runner, setTracingDisabled, tool } from '@openai/agents'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type ClientStack, GPT_PRICES, type Json, type Received, startClientStack } from './client-stack.ts'
import { toolCallIn, toolExchangeIn } from './tool-calls.ts'

// The OpenAI Agents SDK with a tool, its model provider pointed at the gateway
// as the README says. Traces would go to OpenAI's own endpoint: off.

setTracingDisabled(true)

let cs: ClientStack

beforeAll(async () => {
  cs = await startClientStack()
  await cs.facade('gpt-4o-mini', 'openai', 'gpt-4o-mini', GPT_PRICES)
})

afterAll(async () => {
  await cs?.close()
})

const ran: { city: string }[] = []
const weather = tool({
  name: 'weather',
  description: 'Current weather in a city',
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => {
    ran.push({ city })
    return JSON.stringify({ city, celsius: -3 })
  },
})

const agent = new Agent({
  name: 'Forecaster',
  instructions: 'Answer weather questions with the weather tool.',
  model: 'gpt-4o-mini',
  tools: [weather],
})

/** Two agent runs, the second streamed; each is a tool call and a final answer: four provider requests. */
async function exercise(runner: Runner) {
  ran.length = 0
  const plain = await runner.run(agent, 'What is the weather in Oslo?')
  const streamed = await runner.run(agent, 'What is the weather in Bergen?', { stream: true })
  const deltas: string[] = []
  for await (const t of streamed.toTextStream()) deltas.push(t)
  await streamed.completed
  return { plain, streamed, deltas, ran: [...ran] }
}

async function expectToolRun(sent: Received[], i: number, cityRan: { city: string } | undefined) {
  const called = toolCallIn(sent[i]!.path, await cs.replay(sent[i]!))
  expect(called.name).toBe('weather')
  const city = (JSON.parse(called.arguments) as { city: string }).city
  expect(cityRan).toEqual({ city })
  expect(toolExchangeIn(sent[i + 1]!.path, sent[i + 1]!.body as Json)).toEqual({
    call: called,
    output: JSON.stringify({ city, celsius: -3 }),
  })
}

describe('OpenAI Agents SDK through the gateway', () => {
  for (const useResponses of [true, false]) {
    const path = useResponses ? '/v1/responses' : '/v1/chat/completions'
    it(`${useResponses ? 'Responses API (default)' : 'Chat Completions'}: agent runs its tool, plain and streamed, one row per request`, async () => {
      const { key, keyId } = await cs.newKey(`agents-${path}`)
      const runner = new Runner({
        modelProvider: new OpenAIProvider({ baseURL: `${cs.url}/v1`, apiKey: key, useResponses }),
      })
      const { result, sent } = await cs.capture(() => exercise(runner))
      expect(sent.map((s) => s.path)).toEqual(Array(4).fill(path))
      expect(sent.map((s) => s.body?.stream === true)).toEqual([false, false, true, true])
      // The model called the tool; the SDK ran it with the provider's arguments and sent the result back.
      expect(result.ran).toHaveLength(2)
      await expectToolRun(sent, 0, result.ran[0])
      await expectToolRun(sent, 2, result.ran[1])
      expect(String(result.plain.finalOutput).length).toBeGreaterThan(0)
      expect(result.deltas.length).toBeGreaterThan(1)
      expect(result.deltas.join('')).toBe(result.streamed.finalOutput)

      const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
      expect(rows.map((r) => [r.model, r.endpoint])).toEqual(Array(4).fill(['gpt-4o-mini', path]))
    })
  }
})
