import type { Json } from './client-stack.ts'

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
  throw new Error(`no tool call in the answer to ${path}: ${JSON.stringify(answer).slice(0, 500)}`)
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
