import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClientStack, type Received, startClientStack } from './client-stack.ts'
import { readmeBlocks, readmeEnv, substitute } from './readme-snippets.ts'
import { expectToolRoundTrips } from './tool-calls.ts'

// The Codex CLI (`@openai/codex`, a native binary from npm) in exec mode, with
// a temporary CODEX_HOME holding the README's config.toml. The model's
// invented shell commands run inside Codex's read-only sandbox.

const run = promisify(execFile)
const CODEX = join(import.meta.dirname, '../../node_modules/.bin/codex')
const MODEL = 'gpt-5.5'

let cs: ClientStack
let root: string

beforeAll(async () => {
  cs = await startClientStack()
  root = mkdtempSync(join(tmpdir(), 'tokenmeter-codex-'))
})

afterAll(async () => {
  await cs?.close()
  if (root) rmSync(root, { recursive: true, force: true })
})

interface CodexRun {
  events: Record<string, unknown>[]
  stderr: string
}

/** A fresh CODEX_HOME with `config`, then `codex exec --json <prompt>` with the README's environment. */
async function codex(
  name: string,
  config: string,
  key: string,
  prompt: string,
  login = false,
): Promise<CodexRun> {
  const home = join(root, name)
  const codexHome = join(home, '.codex')
  const work = join(home, 'work')
  mkdirSync(codexHome, { recursive: true })
  mkdirSync(work)
  writeFileSync(join(codexHome, 'config.toml'), config)
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    CODEX_HOME: codexHome,
    ...readmeEnv('Codex CLI', cs.url, key),
  }
  if (login) {
    const p = run(CODEX, ['login', '--with-api-key'], { env, cwd: work, timeout: 30_000 })
    p.child.stdin?.end(key)
    await p
  }
  const p = run(CODEX, ['exec', '--json', '--skip-git-repo-check', '--sandbox', 'read-only', prompt], {
    env,
    cwd: work,
    timeout: 90_000,
    maxBuffer: 32 * 1024 * 1024,
  })
  // An open stdin would be read as more prompt.
  p.child.stdin?.end()
  const { stdout, stderr } = await p
  const events = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { events, stderr }
}

async function expectRun(out: CodexRun, sent: Received[], keyId: string, refused = 0) {
  const completed = out.events.filter((e) => e.type === 'turn.completed')
  expect(completed, out.stderr).toHaveLength(1)
  expect(out.events.some((e) => e.type === 'turn.failed' || e.type === 'error')).toBe(false)
  const messages = out.events.filter(
    (e) => e.type === 'item.completed' && (e.item as { type?: string })?.type === 'agent_message',
  )
  expect(messages.length).toBeGreaterThan(0)
  for (const s of sent) {
    expect(s.path).toBe('/v1/responses')
    expect(s.body?.stream).toBe(true)
  }
  // The fake provider calls Codex's first tool (exec_command); the result comes back in the next request.
  expect(await expectToolRoundTrips(cs, sent)).toBeGreaterThan(0)
  const { billed, refused: refusals } = await cs.expectOneRowPerBilledRequest(keyId, sent, { refused })
  // No facade: gpt-5.5 passes through to OpenAI, priced from the catalogue.
  for (const r of billed) {
    expect([r.model, r.provider, r.upstream_model, r.endpoint, r.streamed]).toEqual([
      MODEL,
      'openai',
      MODEL,
      '/v1/responses',
      true,
    ])
  }
  // Codex's own count of the turn is what the rows hold.
  const usage = completed[0]!.usage as {
    input_tokens: number
    cached_input_tokens: number
    output_tokens: number
    reasoning_output_tokens: number
  }
  const sum = (f: (r: (typeof billed)[number]) => number) => billed.reduce((n, r) => n + f(r), 0)
  expect(usage.input_tokens).toBe(sum((r) => r.input_tokens + r.cached_read_tokens))
  expect(usage.output_tokens).toBe(sum((r) => r.output_tokens))
  expect(usage.reasoning_output_tokens).toBe(sum((r) => r.reasoning_tokens))
  return { billed, refusals }
}

describe('Codex CLI (codex exec) through the gateway', () => {
  it("the README's model provider: streamed Responses, tool call intact, one row per request", async () => {
    const { key, keyId } = await cs.newKey('codex-provider')
    const [config] = readmeBlocks('Codex CLI', 'toml')
    const { result, sent } = await cs.capture(() =>
      codex('provider', substitute(config!, cs.url, key), key, 'Say hello in five words.'),
    )
    const { billed } = await expectRun(result, sent, keyId)
    for (const r of billed) expect(r.client_app).toBe('codex')
  })

  it('the built-in OpenAI provider: its WebSocket attempt is refused, it falls back to HTTP', async () => {
    const { key, keyId } = await cs.newKey('codex-builtin')
    const [, config] = readmeBlocks('Codex CLI', 'toml')
    const { result, sent } = await cs.capture(() =>
      codex('builtin', substitute(config!, cs.url, key), key, 'Say hello in five words.', true),
    )
    // It did try: Codex logs the refused upgrade, then carries on over HTTP.
    expect(result.stderr).toMatch(/failed to connect to Responses WebSocket/)
    await expectRun(result, sent, keyId)
  })
})
