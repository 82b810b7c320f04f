import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { scanSegment } from '../services/src/core/storage/record-framing.ts'
import { decodeBatch } from '../services/src/worker/batch-codec.ts'
import { createDiskSpool, SpoolFullError } from '../services/src/worker/disk-spool.ts'
import { makeUsageRow } from './helpers/clickhouse-http-checks.ts'

const dirs: string[] = []
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tokenmeter-spool-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const batch = (i: number, rows = 5) => ({
  batchId: `b${i}`,
  createdAt: Date.now() + i,
  rows: Array.from({ length: rows }, (_, j) => makeUsageRow(i * 100 + j)),
})

describe('disk spool', () => {
  it('keeps concurrent spills whole, in order, fsynced, in sealed segments', async () => {
    const dir = tmp()
    const spool = createDiskSpool({ dir, maxBytes: 10_000_000, logger: pino({ enabled: false }) })
    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.spill(batch(i), 'test')))
    await spool.seal()
    const segs = await spool.sealedSegments()
    expect(segs).toHaveLength(1)
    const { records, problems } = scanSegment(readFileSync(segs[0]!.path))
    expect(problems).toEqual([])
    expect(records.map((r) => decodeBatch(r.payload).batchId)).toEqual(
      Array.from({ length: 20 }, (_, i) => `b${i}`),
    )
    await spool.close()
  })

  it('refuses new batches when full and says so, instead of growing or dropping', async () => {
    const dir = tmp()
    const spool = createDiskSpool({ dir, maxBytes: 3_000, logger: pino({ enabled: false }) })
    let stored = 0
    let refused = 0
    for (let i = 0; i < 20; i++) {
      try {
        await spool.spill(batch(i), 'test')
        stored++
      } catch (err) {
        expect(err).toBeInstanceOf(SpoolFullError)
        refused++
      }
    }
    expect(stored).toBeGreaterThan(0)
    expect(refused).toBeGreaterThan(0)
    const s = await spool.status()
    expect(s.bytes).toBeLessThanOrEqual(3_000)
    expect(s.rejected).toBe(refused)
    expect(s.lastError).toMatch(/spool full/)
    await spool.close()
  })

  it('seals what a dead writer left open, and starts fresh segments per process', async () => {
    const dir = tmp()
    const spool = createDiskSpool({
      dir,
      maxBytes: 10_000_000,
      sealAfterMs: 60_000,
      logger: pino({ enabled: false }),
    })
    await spool.spill(batch(1), 'test')
    expect(readdirSync(dir).some((n) => n.endsWith('.open'))).toBe(true)
    // Simulate a crashed writer: an .open file owned by a pid that is not running.
    const open = readdirSync(dir).find((n) => n.endsWith('.open'))!
    const orphan = open.replace(`-${process.pid}-`, '-999999-')
    writeFileSync(join(dir, orphan), readFileSync(join(dir, open)))
    const next = createDiskSpool({ dir, maxBytes: 10_000_000, logger: pino({ enabled: false }) })
    expect((await next.sealedSegments()).map((s) => s.name)).toEqual([orphan.replace('.open', '.seg')])
    await spool.close()
    await next.close()
  })
})
