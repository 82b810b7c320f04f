import { expect } from 'vitest'
import type { ClientStack, Json, Received } from './client-stack.ts'

/**
 * A tool call read the same way from each API's shape, so a test can compare
 * the call the provider made with the one the client sent back next turn.
 * `arguments` is the JSON text (Anthropic's `input` object, stringified).
 */
export interface ToolCall {
  id: string
  name: string
  arguments: string
}

const asArray = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : [])

function text(content: unknown): string {
  if (typeof content === 'string') return content
  return asArray(content)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .join('')
}

/** The (first) tool call in a provider's non-streamed answer. */
export function toolCallIn(path: string, answer: Json): ToolCall {
  const call = findToolCall(path, answer)
  if (!call) throw new Error(`no tool call in the answer to ${path}: ${JSON.stringify(answer).slice(0, 500)}`)
  return call
}

export function findToolCall(path: string, answer: Json): ToolCall | undefined {
  if (path.endsWith('/chat/completions')) {
    const message = (asArray(answer.choices)[0]?.message ?? {}) as Json
    const c = asArray(message.tool_calls)[0]
    const f = (c?.function ?? {}) as Json
    if (c) return { id: String(c.id), name: String(f.name), arguments: String(f.arguments) }
  } else if (path.endsWith('/messages')) {
    const c = asArray(answer.content).find((b) => b.type === 'tool_use')
    if (c) return { id: String(c.id), name: String(c.name), arguments: JSON.stringify(c.input) }
  } else if (path.endsWith('/responses')) {
    const c = asArray(answer.output).find((i) => i.type === 'function_call')
    if (c) return { id: String(c.call_id), name: String(c.name), arguments: String(c.arguments) }
  }
  return undefined
}

/** The last tool call a request carries back in its history, and the result the client gives it. */
export function toolExchangeIn(path: string, body: Json): { call: ToolCall; output: string } | undefined {
  if (path.endsWith('/chat/completions')) {
    const messages = asArray(body.messages)
    const assistant = messages.findLast((m) => asArray(m.tool_calls).length > 0)
    const c = asArray(assistant?.tool_calls)[0]
    if (!c) return undefined
    const f = (c.function ?? {}) as Json
    const result = messages.find((m) => m.role === 'tool' && m.tool_call_id === c.id)
    return {
      call: { id: String(c.id), name: String(f.name), arguments: String(f.arguments) },
      output: text(result?.content),
    }
  }
  if (path.endsWith('/messages')) {
    const blocks = asArray(body.messages).flatMap((m) => asArray(m.content))
    const c = blocks.findLast((b) => b.type === 'tool_use')
    if (!c) return undefined
    const result = blocks.find((b) => b.type === 'tool_result' && b.tool_use_id === c.id)
    return {
      call: { id: String(c.id), name: String(c.name), arguments: JSON.stringify(c.input) },
      output: text(result?.content),
    }
  }
  if (path.endsWith('/responses')) {
    const items = asArray(body.input)
    const c = items.findLast((i) => i.type === 'function_call')
    if (!c) return undefined
    const result = items.find((i) => i.type === 'function_call_output' && i.call_id === c.call_id)
    return {
      call: { id: String(c.call_id), name: String(c.name), arguments: String(c.arguments) },
      output: text(result?.output),
    }
  }
  return undefined
}

/**
 * Every tool call the provider answered with came back in the client's next
 * request exactly as sent, with a result for it; how many there were. (The
 * fake provider calls the first tool it is offered, with arguments from its
 * schema, unless the conversation ends with a tool result.) For agents that
 * send one request at a time.
 */
export async function expectToolRoundTrips(cs: ClientStack, sent: Received[]): Promise<number> {
  let calls = 0
  for (let i = 0; i + 1 < sent.length; i++) {
    const called = findToolCall(sent[i]!.path, await cs.replay(sent[i]!))
    if (!called) continue
    const exchange = toolExchangeIn(sent[i + 1]!.path, sent[i + 1]!.body as Json)
    expect(exchange?.call, `tool call of request ${i} in request ${i + 1}`).toEqual(called)
    expect(exchange?.output.length).toBeGreaterThan(0)
    calls++
  }
  return calls
}
