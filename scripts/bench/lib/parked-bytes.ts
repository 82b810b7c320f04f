import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { createUsageJournal, drainableSegments } from '../../../services/src/core/usage/usage-journal.ts'
import { createJournalCompactor } from '../../../services/src/worker/journal-compaction.ts'
import { demoRows } from './demo-rows.ts'

/**
 * Bytes per row of parked journal segments, as JSON lines and compressed
 * while parked (worker/journal-compaction.ts), for batch sizes from a quiet
 * gateway's to a busy one's: how long JOURNAL_MAX_BYTES holds an outage
 * (docs/OUTAGES.md, "What it costs"). Rows of the demo catalogue (what
 * `npm run bench` ingests), written 20 per journal write (a busy gateway's
 * turn of the event loop). Sizes, and the compaction's own time; no gateway
 * or ClickHouse. Part of `npm run bench -- --only=journal`.
 */
const logger = pino({ enabled: false })
const ROWS_PER_WRITE = 20
const GiB = 2 ** 30

export const PARKED_BYTES_COLUMNS = [
  'rows per batch (= req/s)',
  'bytes/row as JSON lines',
  'bytes/row compressed',
  'ratio',
  'compaction ms per 1,000 rows',
  '1 GiB holds, compressed (as JSON)',
]

// With RECORDER_FLUSH_MS=1000 a batch holds a second of rows: batch rows = requests per second.
export async function measureParkedBytes(): Promise<string[][]> {
  const out: string[][] = []
  for (const [batchRows, batches] of [
    [5, 400],
    [50, 200],
    [500, 40],
    [2_000, 20],
    [10_000, 4],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-bytes-'))
    try {
      const journal = createUsageJournal({ dir, maxBytes: 4 * GiB, fsyncMs: 200, logger })
      const rows = demoRows(batchRows * batches, batchRows, 60_000)
      let at = 0
      for (let b = 0; b < batches; b++) {
        for (let i = 0; i < batchRows; i++) {
          journal.append(rows[at++]!)
          if ((i + 1) % ROWS_PER_WRITE === 0) journal.durable()
        }
        const cut = journal.cut()!
        await cut.synced
        journal.park(cut.token, { mergeable: true })
      }
      const plain = drainableSegments(dir).reduce((n, s) => n + s.bytes, 0)
      const compactor = createJournalCompactor({
        journal,
        logger,
        busy: () => false,
        stopped: () => false,
        budgetBytes: 4 * GiB,
      })
      const started = performance.now()
      await compactor.tick()
      const ms = performance.now() - started
      const packed = drainableSegments(dir).reduce((n, s) => n + s.bytes, 0)
      const total = rows.length
      const hours = (bytesPerRow: number) => {
        const h = GiB / bytesPerRow / batchRows / 3_600
        return h >= 48 ? `${(h / 24).toFixed(0)} days` : `${h.toFixed(1)} h`
      }
      out.push([
        batchRows.toLocaleString('en-US'),
        (plain / total).toFixed(1),
        (packed / total).toFixed(1),
        `${(plain / packed).toFixed(1)}x`,
        ((ms / total) * 1_000).toFixed(1),
        `${hours(packed / total)} (${hours(plain / total)})`,
      ])
      await journal.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return out
}
