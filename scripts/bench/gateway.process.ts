import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../services/src/app.ts'
import { createCore } from '../../services/src/bootstrap.ts'
import { parseEnv } from '../../services/src/core/config/env.ts'
import { createUsageRecorder, type UsageRecorder } from '../../services/src/core/usage/usage-recorder.ts'
import { errorLogger } from './lib/report.ts'

/**
 * Our gateway for the benchmark, in its own process so the load generator
 * never shares its event loop: the product's Core on the embedded engine
 * (recording on, rollups attached, local budgets), the gateway role only.
 * Args: --upstream=<origin> [--data-dir=<dir>] [--journal=off] [--switchable [--busy-us=N]] [--api] (also serve the API,
 * for the live benchmark) [--viewers=N] (N more people, leads of the bench team, each with
 * a key: live viewers are people, each with the product's per-user socket allowance).
 * Prints `READY <json>` with the URL, a virtual key, the viewers' keys and the data
 * directory; on SIGTERM it flushes usage and exits.
 */
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const upstream = arg('upstream')
if (!upstream) throw new Error('--upstream=<origin> is required')
const withApi = process.argv.includes('--api')
/** EMBEDDED_INSERT_NICE for this gateway (the product default unless given). */
const insertNice = arg('insert-nice')
/** --journal=off: the gateway without its write-ahead journal, only to measure the journal's cost. */
const journal = arg('journal')
/**
 * --switchable: the journal benchmark's same-process comparison. The gateway
 * starts with its journal on and a second recorder without one beside it;
 * `GET <control>/?mode=on|off|busy` sends the next answers' rows to the
 * journal (on), to the in-memory recorder (off, what JOURNAL=off does), or
 * to the in-memory recorder after --busy-us µs of busy work (busy: what any work
 * of the journal's size costs end to end on this machine). Comparing modes of
 * one process leaves out the differences between two processes.
 */
const switchable = process.argv.includes('--switchable')
const busyUs = Number(arg('busy-us') ?? 0)
const viewers = Number(arg('viewers') ?? 0)
const dataDir = arg('data-dir') ?? mkdtempSync(join(tmpdir(), 'tokenmeter-bench-gw-'))
const ADMIN_TOKEN = 'bench-admin-token-0123456789'

const env = parseEnv({
  DATA_DIR: dataDir,
  DEMO: 'false',
  LOG_LEVEL: 'silent',
  ROLES: withApi ? 'gateway,api' : 'gateway',
  ADMIN_TOKEN,
  OPENAI_BASE_URL: `${upstream}/v1`,
  OPENAI_API_KEY: 'sk-bench-upstream',
  ...(insertNice ? { EMBEDDED_INSERT_NICE: insertNice } : {}),
  ...(journal ? { JOURNAL: journal } : {}),
})
const core = await createCore(env, { logger: errorLogger() })
const modeSwitch = switchable ? await startModeSwitch() : undefined
await core.store.upsertTeam({ teamId: 'bench-team', name: 'Bench team' })
await core.store.upsertUser({
  userId: 'bench-user',
  email: 'bench@example.com',
  name: 'Bench user',
  teamId: 'bench-team',
  role: 'admin',
})
// Facade name = upstream model name: the body is forwarded byte for byte, as to the other paths.
await core.store.upsertModel({
  model: 'gpt-4o-mini',
  provider: 'openai',
  upstreamModel: 'gpt-4o-mini',
  inputPerM: 0.15,
  outputPerM: 0.6,
  cachedReadPerM: 0.075,
  cacheWritePerM: 0,
})
const { plaintext } = await core.store.createKey({ userId: 'bench-user', name: 'bench' })
const viewerKeys: string[] = []
for (let i = 0; i < viewers; i++) {
  const userId = `bench-viewer-${i}`
  await core.store.upsertUser({
    userId,
    email: `viewer-${i}@example.com`,
    name: `Viewer ${i}`,
    teamId: 'bench-team',
    role: 'lead',
  })
  viewerKeys.push((await core.store.createKey({ userId, name: `viewer ${i}` })).plaintext)
}
const app = await buildApp(core, { roles: withApi ? ['gateway', 'api'] : ['gateway'] })
const url = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(
  `READY ${JSON.stringify({ url, key: plaintext, viewerKeys, dataDir, adminToken: ADMIN_TOKEN, control: modeSwitch?.url })}\n`,
)

let stopping = false
process.on('SIGTERM', async () => {
  if (stopping) return
  stopping = true
  await app.close()
  const s = core.recorder.stats()
  await modeSwitch?.close()
  await core.close()
  process.stdout.write(`STATS ${JSON.stringify(s)}\n`)
  process.exit(0)
})

/** --switchable: the control server that switches where rows go. */
async function startModeSwitch(): Promise<{ url: string; close: () => Promise<void> }> {
  const journaled = core.recorder.recordDurably
  const memoryOnly = createUsageRecorder({
    warehouse: core.warehouse,
    insertBatch: core.outage.insertBatch,
    spill: core.outage.sink,
    maxRows: env.RECORDER_MAX_ROWS,
    flushMs: env.RECORDER_FLUSH_MS,
    insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
    logger: core.log,
  })
  const modes: Record<string, UsageRecorder['recordDurably']> = {
    on: journaled,
    off: memoryOnly.recordDurably,
    busy: (row) => {
      const until = performance.now() + busyUs / 1000
      while (performance.now() < until) {}
      return memoryOnly.recordDurably(row)
    },
  }
  const server = createServer((req, res) => {
    const mode = new URL(req.url ?? '/', 'http://control').searchParams.get('mode') ?? ''
    const recordDurably = modes[mode]
    if (!recordDurably) return res.writeHead(400).end(`mode must be one of ${Object.keys(modes).join(', ')}`)
    core.recorder.recordDurably = recordDurably
    res.end(mode)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.close()
      await memoryOnly.close()
    },
  }
}
