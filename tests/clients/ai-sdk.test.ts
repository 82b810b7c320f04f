import { createAnthropic } from '@ai-sdk/anthropic'
import { createOpenAI } from '@ai-sdk/openai'
import { generateText, type LanguageModel, stepCountIs, streamText, tool } from 'ai'
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
import { type ToolCall, toolCallIn, toolExchangeIn } from './tool-calls.ts'

// The Vercel AI SDK (`ai` with `@ai-sdk/openai` and `@ai-sdk/anthropic`),
// configured as the README says: base URL and key, nothing else.

let cs: ClientStack

beforeAll(async () => {
  cs = await startClientStack()
  await cs.facade('gpt-4o-mini', 'openai', 'gpt-4o-mini', GPT_PRICES)
  await cs.facade('claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5', CLAUDE_PRICES)
})

afterAll(async () => {
  await cs?.close()
})

const PROMPT = 'Why do rollups need a deduplication token on every target?'
const TOOL_PROMPT = 'What is the weather in Oslo? Use the tool.'

const weather = tool({
  description: 'Current weather in a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, celsius: -3 }),
})

/**
 * Text, streamed text, then a tool the model calls and whose result goes
 * back, not streamed and streamed: six provider requests.
 */
async function exercise(model: LanguageModel) {
  const generated = await generateText({ model, prompt: PROMPT, maxRetries: 0 })
  const stream = streamText({ model, prompt: PROMPT, maxRetries: 0 })
  const chunks: string[] = []
  for await (const t of stream.textStream) chunks.push(t)
  const streamedUsage = await stream.usage

  const agentic = await generateText({
    model,
    prompt: TOOL_PROMPT,
    tools: { weather },
    stopWhen: stepCountIs(2),
    maxRetries: 0,
  })
  const streamedAgentic = streamText({
    model,
    prompt: TOOL_PROMPT,
    tools: { weather },
    stopWhen: stepCountIs(2),
    maxRetries: 0,
  })
  const streamedToolCalls: { toolCallId: string; toolName: string; input: unknown }[] = []
  const toolInputDeltas: string[] = []
  for await (const part of streamedAgentic.fullStream) {
    if (part.type === 'tool-call') streamedToolCalls.push(part)
    if (part.type === 'tool-input-delta') toolInputDeltas.push(part.delta)
  }
  const streamedAgenticText = await streamedAgentic.text
  return {
    generated,
    chunks,
    streamedUsage,
    agentic,
    streamedToolCalls,
    toolInputDeltas,
    streamedAgenticText,
  }
}

type Result = Awaited<ReturnType<typeof exercise>>

/** Checks text, streaming and both tool round trips against what the provider answered. */
async function expectExercise(result: Result, sent: Received[]) {
  expect(sent).toHaveLength(6)
  expect(result.generated.text.length).toBeGreaterThan(0)
  expect(result.generated.usage.inputTokens).toBeGreaterThan(0)
  // One provider chunk per word: a buffered answer would come as one piece.
  expect(result.chunks.length).toBeGreaterThan(1)
  expect(sent[1]!.body?.stream).toBe(true)
  expect(result.streamedUsage.outputTokens).toBeGreaterThan(0)

  // The call the provider made, as the SDK saw it, and the result it sent back.
  const called: ToolCall = toolCallIn(sent[2]!.path, await cs.replay(sent[2]!))
  expect(called.name).toBe('weather')
  const [step1, step2] = result.agentic.steps
  expect(step1!.toolCalls.map((c) => [c.toolCallId, c.toolName, c.input])).toEqual([
    [called.id, 'weather', JSON.parse(called.arguments)],
  ])
  const city = (JSON.parse(called.arguments) as { city: string }).city
  expect(toolExchangeIn(sent[3]!.path, sent[3]!.body as Json)).toEqual({
    call: called,
    output: JSON.stringify({ city, celsius: -3 }),
  })
  expect(step2!.text.length).toBeGreaterThan(0)

  const streamedCall = toolCallIn(sent[4]!.path, await cs.replay(sent[4]!))
  expect(sent[4]!.body?.stream).toBe(true)
  expect(result.toolInputDeltas.length).toBeGreaterThan(1)
  expect(result.toolInputDeltas.join('')).toBe(streamedCall.arguments)
  expect(result.streamedToolCalls.map((c) => [c.toolCallId, c.toolName, c.input])).toEqual([
    [streamedCall.id, 'weather', JSON.parse(streamedCall.arguments)],
  ])
  expect(toolExchangeIn(sent[5]!.path, sent[5]!.body as Json)?.call).toEqual(streamedCall)
  expect(result.streamedAgenticText.length).toBeGreaterThan(0)
}

describe('Vercel AI SDK through the gateway', () => {
  it('@ai-sdk/openai .chat() (Chat Completions): text, streaming, tool calls both ways, one row each', async () => {
    const { key, keyId } = await cs.newKey('ai-sdk-chat')
    const openai = createOpenAI({
      baseURL: `${cs.url}/v1`,
      apiKey: key,
      headers: { 'x-client-app': 'ai-sdk' },
    })
    const { result, sent } = await cs.capture(() => exercise(openai.chat('gpt-4o-mini')))
    expect(sent.map((s) => s.path)).toEqual(Array(6).fill('/v1/chat/completions'))
    await expectExercise(result, sent)
    const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app])).toEqual(
      Array(6).fill(['gpt-4o-mini', '/v1/chat/completions', 'ai-sdk']),
    )
    // The SDK saw the same numbers the row holds.
    expect(result.generated.usage.inputTokens).toBe(rows[0]!.input_tokens + rows[0]!.cached_read_tokens)
    expect(result.generated.usage.outputTokens).toBe(rows[0]!.output_tokens)
  })

  it('@ai-sdk/openai default (Responses API): text, streaming, tool calls both ways, one row each', async () => {
    const { key, keyId } = await cs.newKey('ai-sdk-responses')
    const openai = createOpenAI({
      baseURL: `${cs.url}/v1`,
      apiKey: key,
      headers: { 'x-client-app': 'ai-sdk' },
    })
    const { result, sent } = await cs.capture(() => exercise(openai('gpt-4o-mini')))
    expect(sent.map((s) => s.path)).toEqual(Array(6).fill('/v1/responses'))
    await expectExercise(result, sent)
    const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app])).toEqual(
      Array(6).fill(['gpt-4o-mini', '/v1/responses', 'ai-sdk']),
    )
    expect(result.generated.usage.inputTokens).toBe(rows[0]!.input_tokens + rows[0]!.cached_read_tokens)
    expect(result.generated.usage.outputTokens).toBe(rows[0]!.output_tokens)
  })

  it('@ai-sdk/anthropic: text, streaming, tool_use both ways, one row each', async () => {
    const { key, keyId } = await cs.newKey('ai-sdk-anthropic')
    // The Anthropic provider's base URL includes /v1, as its docs say.
    const anthropic = createAnthropic({
      baseURL: `${cs.url}/v1`,
      apiKey: key,
      headers: { 'x-client-app': 'ai-sdk' },
    })
    const { result, sent } = await cs.capture(() => exercise(anthropic('claude-sonnet-4-5')))
    expect(sent.map((s) => s.path)).toEqual(Array(6).fill('/v1/messages'))
    await expectExercise(result, sent)
    const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
    expect(rows.map((r) => [r.model, r.endpoint, r.client_app])).toEqual(
      Array(6).fill(['claude-sonnet-4-5', '/v1/messages', 'ai-sdk']),
    )
    expect(result.generated.usage.outputTokens).toBe(rows[0]!.output_tokens)
  })
})
