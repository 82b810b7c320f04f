import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { seededRandom } from './helpers/test-seed.ts'

/**
 * A recording process killed with SIGKILL under steady load: how many rows
 * whose clients got an answer never reach ClickHouse? The gateway's only
 * usage step is `recorder.record(row)`, so the child drives a real Core's
 * recorder directly (see tests/helpers/clickhouse-http-load.child.ts).
 *
 * The bound (docs/OUTAGES.md): rows accepted but not yet inserted or spilled
 * at the moment of death, i.e. at most RECORDER_FLUSH_MS worth of traffic
 * plus the batch whose insert was in flight. The test checks that the loss
 * never exceeds what the recorder itself reported as not yet durable, and
 * prints the measurement.
 */
const FLUSH_MS = 200
const ROW_EVERY_MS = 2
// When each SIGKILL lands within a flush interval: seeded, the seed printed.
const { random } = seededRandom('outage-gateway-kill kill timings')
let ch: ClickHouseHttp
let dataDir: string

beforeAll(async () => {
  ch = await startClickHouseHttp()
  dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-kill-'))
})
afterAll(async () => {
  await ch?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

async function runAndKill(afterMs: number) {
  const child = spawn(process.execPath, ['tests/helpers/clickhouse-http-load.child.ts'], {
    env: {
      ...process.env,
      CLICKHOUSE_URL: ch.url,
      DATA_DIR: dataDir,
      RECORDER_FLUSH_MS: String(FLUSH_MS),
      ROW_EVERY_MS: String(ROW_EVERY_MS),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const accepted: string[] = []
  let durable = 0
  let buffered = ''
  let ready: () => void
  const isReady = new Promise<void>((r) => {
    ready = r
  })
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const l of lines) {
      if (l === 'READY') ready()
      else if (l.startsWith('A ')) accepted.push(l.slice(2))
      else if (l.startsWith('D ')) durable = Number(l.slice(2))
    }
  })
  await isReady
  await new Promise((r) => setTimeout(r, afterMs))
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
  return { accepted, durable }
}

describe('recording process killed with SIGKILL under load', () => {
  it('loses at most the rows not yet flushed, and measures them', async () => {
    const results = []
    for (const afterMs of [700, 1_100, 1_500]) {
      const { accepted, durable } = await runAndKill(afterMs + random() * FLUSH_MS)
      const ids = new Set(accepted)
      const rows = await ch.query<{ id: string }>('SELECT toString(request_id) AS id FROM requests')
      const landed = rows.filter((r) => ids.has(r.id)).length
      const lost = accepted.length - landed
      const notYetDurable = accepted.length - durable
      results.push({ accepted: accepted.length, lost, notYetDurable })
      expect(accepted.length).toBeGreaterThan(100)
      expect(lost).toBeGreaterThanOrEqual(0)
      expect(lost).toBeLessThanOrEqual(notYetDurable)
      await ch.query('TRUNCATE TABLE requests')
    }
    console.log(
      `SIGKILL under load, RECORDER_FLUSH_MS=${FLUSH_MS}: ` +
        results
          .map((r) => `${r.lost} of ${r.accepted} lost (not yet durable at the kill: ${r.notYetDurable})`)
          .join('; '),
    )
  })
})
