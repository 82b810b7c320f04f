import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Child, startChild } from '../scripts/bench/lib/child.ts'

// The journal benchmark's one-process comparison is only honest if its
// switch really sends rows past the journal: the gateway it switches
// (gateway.process.ts --switchable) must journal rows in mode `on` only.

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))
const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-bench-switch-'))
let upstream: Child
let gateway: Child
let ready: { url: string; key: string; control: string }

beforeAll(async () => {
  upstream = await startChild(
    process.execPath,
    [here('../scripts/bench/upstream.process.ts'), '--latency-ms=0'],
    {
      marker: 'READY ',
    },
  )
  gateway = await startChild(
    process.execPath,
    [
      here('../scripts/bench/gateway.process.ts'),
      `--upstream=${upstream.ready}`,
      `--data-dir=${dataDir}`,
      '--switchable',
    ],
    { marker: 'READY ', timeoutMs: 120_000 },
  )
  ready = JSON.parse(gateway.ready)
}, 150_000)
afterAll(async () => {
  await gateway?.stop()
  await upstream?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

async function answer(stream: boolean): Promise<void> {
  const res = await fetch(`${ready.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ready.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream }),
  })
  expect(res.status).toBe(200)
  await res.text()
}

async function switchTo(mode: string): Promise<Response> {
  return fetch(`${ready.control}/?mode=${mode}`)
}

describe('journal bench: the one-process switch', () => {
  it('journals rows in mode on only, and refuses an unknown mode', async () => {
    expect((await switchTo('off')).status).toBe(200)
    for (const stream of [false, true, false]) await answer(stream)
    expect((await switchTo('busy')).status).toBe(200)
    await answer(true)
    expect((await switchTo('on')).status).toBe(200)
    await answer(false)
    await answer(true)
    const bad = await switchTo('sideways')
    expect(bad.status).toBe(400)
    expect(await bad.text()).toMatch(/on, off, busy/)

    // On SIGTERM the gateway prints its journaled recorder's stats.
    await gateway.stop()
    const stats = JSON.parse(gateway.lines.find((l) => l.startsWith('STATS '))!.slice('STATS '.length)) as {
      recorded: number
    }
    expect(stats.recorded).toBe(2)
  }, 60_000)
})
