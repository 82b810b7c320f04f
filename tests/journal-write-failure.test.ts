import * as fs from 'node:fs'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { scanSegment } from '../services/src/core/storage/record-framing.ts'
import { createUsageJournal } from '../services/src/core/usage/usage-journal.ts'
import { makeUsageRow } from './helpers/clickhouse-http-checks.ts'

/**
 * A journal write that fails (a full disk, an I/O error): injected, since a
 * real one cannot be provoked in a test's temporary directory. The answer
 * that asked for durability is told (the gateway reports it and ends the
 * answer anyway), the failed rows are counted, and no torn record is left
 * for the rows that follow.
 */
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>()
  return { ...real, writeSync: vi.fn(real.writeSync) }
})

const quiet = pino({ enabled: false })

afterEach(() => {
  vi.mocked(fs.writeSync).mockReset()
})

describe('a journal write that fails', () => {
  it('rejects durable() for the rows it held, counts them, and keeps the segment clean for the next rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-fail-'))
    const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
    const real = (await vi.importActual<typeof import('node:fs')>('node:fs')).writeSync

    vi.mocked(fs.writeSync).mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })
    })
    expect(journal.append(makeUsageRow(1))).toBe(true)
    expect(journal.append(makeUsageRow(2))).toBe(true)
    await expect(journal.durable()).rejects.toThrow(/ENOSPC/)
    expect(journal.status()).toMatchObject({ rejectedRows: 2, pendingRefused: 2 })
    expect(journal.status().lastError).toMatch(/journal write failed: ENOSPC/)

    // The disk recovers: the next answer's row is written at the end of its turn.
    vi.mocked(fs.writeSync).mockImplementation(real)
    const next = makeUsageRow(3)
    journal.append(next)
    await journal.durable()
    const segment = join(dir, readdirSync(dir)[0]!)
    const { records } = scanSegment(readFileSync(segment))
    expect(records).toHaveLength(1)
    expect(records[0]!.payload.toString()).toContain(next.request_id)
    // The batch is not whole in the journal: the recorder keeps it in memory.
    expect(journal.cut()!.complete).toBe(false)
    await journal.close()
  })
})
