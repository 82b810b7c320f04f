import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClientStack, type Received, startClientStack } from './client-stack.ts'
import { readmeEnv } from './readme-snippets.ts'
import { expectToolRoundTrips } from './tool-calls.ts'

// Claude Code (`@anthropic-ai/claude-code`, a native binary from npm) in print
// mode, configured exactly as the README's "Claude Code" section says. A
// temporary HOME keeps it off the machine's own settings; telemetry, the
// auto-updater and other non-essential traffic are off so that the only
// network peer is the gateway.

const run = promisify(execFile)
const CLAUDE = join(import.meta.dirname, '../../node_modules/.bin/claude')

/**
 * The model ids the pinned Claude Code version sends (logged by the tests
 * below). No admin creates anything for them: models without a facade pass
 * through to their provider, priced from the catalogue.
 */
const DEFAULT_MODEL = 'claude-opus-5-5'
const SONNET_MODEL = 'claude-sonnet-5-5'

let cs: ClientStack
let home: string

beforeAll(async () => {
  cs = await startClientStack()
  home = mkdtempSync(join(tmpdir(), 'tokenmeter-claude-home-'))
})

afterAll(async () => {
  await cs?.close()
  if (home) rmSync(home, { recursive: true, force: true })
})

interface PrintResult {
  type: string
  subtype: string
  is_error: boolean
  result: string
  usage: { input_tokens: number; output_tokens: number }
  modelUsage: Record<string, unknown>
}

/** `claude -p <prompt> <args>` with the README's environment; stream-json events, last one the result. */
async function claude(key: string, prompt: string, args: string[] = []) {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    ...readmeEnv('Claude Code', cs.url, key),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
  }
  const child = run(
    CLAUDE,
    ['-p', prompt, '--output-format', 'stream-json', '--verbose', '--include-partial-messages', ...args],
    { env, cwd: home, timeout: 60_000, maxBuffer: 32 * 1024 * 1024 },
  )
  // An open stdin would be read as more prompt: Claude Code waits for it to end.
  child.child.stdin?.end()
  const { stdout } = await child
  const events = stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  const result = events.at(-1) as unknown as PrintResult
  expect(result.type).toBe('result')
  return { events, result }
}

/** Text deltas of the last message Claude Code received: more than one means the answer streamed through. */
function lastTextDeltas(events: Record<string, unknown>[]): string[] {
  let out: string[] = []
  for (const e of events) {
    const ev = e.event as { type?: string; delta?: { type?: string; text?: string } } | undefined
    if (e.type !== 'stream_event') continue
    if (ev?.type === 'message_start') out = []
    if (ev?.type === 'content_block_delta' && ev.delta?.type === 'text_delta') out.push(ev.delta.text ?? '')
  }
  return out
}

/** One run as users run it: works, streams, tool calls intact, one row per request. */
async function expectRun(
  model: string,
  out: Awaited<ReturnType<typeof claude>>,
  sent: Received[],
  keyId: string,
) {
  console.log(`claude -p sent model ids: ${[...new Set(sent.map((s) => s.body?.model))].join(', ')}`)
  expect(out.result.is_error, out.result.result).toBe(false)
  expect(out.result.result.length).toBeGreaterThan(0)
  const deltas = lastTextDeltas(out.events)
  expect(deltas.length).toBeGreaterThan(1)
  expect(deltas.join('')).toBe(out.result.result)
  for (const s of sent) {
    expect(s.path).toBe('/v1/messages')
    expect(s.body?.stream).toBe(true)
  }
  // The fake provider calls Claude Code's first tool (Agent) with arguments from its schema.
  expect(await expectToolRoundTrips(cs, sent)).toBeGreaterThan(0)
  const { billed: rows } = await cs.expectOneRowPerBilledRequest(keyId, sent)
  for (const r of rows) {
    expect([r.model, r.provider, r.upstream_model, r.client_app, r.streamed]).toEqual([
      model,
      'anthropic',
      model,
      'claude-code',
      true,
    ])
  }
  // What Claude Code itself counted is what the rows hold.
  const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((n, r) => n + f(r), 0)
  expect(out.result.usage.input_tokens).toBe(sum((r) => r.input_tokens))
  expect(out.result.usage.output_tokens).toBe(sum((r) => r.output_tokens))
}

describe('Claude Code (claude -p) through the gateway', () => {
  it('default model: answers, streamed, its tool call and result intact, one row per request', async () => {
    const { key, keyId } = await cs.newKey('claude-code-default')
    const { result, sent } = await cs.capture(() => claude(key, 'Say hello in five words.'))
    await expectRun(DEFAULT_MODEL, result, sent, keyId)
  })

  it('--model sonnet: its own Sonnet id, streamed, tool call intact, one row per request', async () => {
    const { key, keyId } = await cs.newKey('claude-code-sonnet')
    const { result, sent } = await cs.capture(() =>
      claude(key, 'Say hello in five words.', ['--model', 'sonnet']),
    )
    expect(Object.keys(result.result.modelUsage)).toEqual([SONNET_MODEL])
    await expectRun(SONNET_MODEL, result, sent, keyId)
  })
})
