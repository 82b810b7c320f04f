import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { expect } from 'vitest'
import type { Warehouse } from '../../services/src/core/storage/warehouse.ts'
import type { UsageJournal } from '../../services/src/core/usage/usage-journal.ts'
import type { UsageRow } from '../../services/src/core/usage/usage-row.ts'
import { checkExactlyOnce } from './clickhouse-http-checks.ts'

/** Segment files of a journal directory; parked ones may be compressed (`.jnlz`, worker/journal-compaction.ts). */
export const segmentsIn = (dir: string) => readdirSync(dir).filter((f) => /\.jnlz?$/.test(f))
/** Recorded merged inserts (`group-<token>.json`, worker/journal-recovery.ts). */
export const intentsIn = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('group-'))

/** Every accepted row once in the raw table, none other, and every rollup equal to it. */
export async function expectEveryRowOnce(warehouse: Warehouse, accepted: Set<string>) {
  const report = await checkExactlyOnce(warehouse, accepted)
  expect(report.missing).toEqual([])
  expect(report.unexpected).toEqual([])
  expect(report.rawRows).toBe(accepted.size)
  for (const table of ['usage_5m', 'usage_1h', 'usage_1d']) expect(report.rollups[table]).toEqual(report.raw)
}

type RowSource = { nextRow: () => UsageRow; accepted: Set<string> }

/**
 * A batch journaled, cut and parked the way the recorder parks one ClickHouse
 * refused: its rows written as one record (as one turn of the event loop writes them).
 */
export function parkBatch(
  journal: UsageJournal,
  rows: number,
  opts: { mergeable: boolean },
  source: RowSource,
) {
  const out = appendRows(journal, rows, source)
  return park(journal, out, opts)
}

/**
 * The same with `perWrite` rows per record, as a busy gateway's turns write
 * them: each group of rows is written in its own turn of the event loop.
 */
export async function parkBatchInWrites(
  journal: UsageJournal,
  rows: number,
  opts: { mergeable: boolean; perWrite: number },
  source: RowSource,
) {
  const out: UsageRow[] = []
  while (out.length < rows) {
    out.push(...appendRows(journal, Math.min(opts.perWrite, rows - out.length), source))
    await journal.durable()
    // The next group in the next turn: one record each.
    await yieldToLoop()
  }
  return park(journal, out, opts)
}

function appendRows(journal: UsageJournal, rows: number, source: RowSource): UsageRow[] {
  const out: UsageRow[] = []
  for (let i = 0; i < rows; i++) {
    const row = source.nextRow()
    journal.append(row)
    out.push(row)
    source.accepted.add(row.request_id)
  }
  return out
}

function park(journal: UsageJournal, rows: UsageRow[], opts: { mergeable: boolean }) {
  const cut = journal.cut()!
  for (const r of rows) r.batch_id = cut.token
  expect(journal.park(cut.token, { mergeable: opts.mergeable })).toBe(true)
  return { token: cut.token, rows }
}

/** Runs `fn` with a fresh data directory (its journal at `<dataDir>/journal`), removed afterwards. */
export async function inJournalDataDir(
  name: string,
  fn: (dirs: { dataDir: string; dir: string }) => Promise<void>,
): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), `tokenmeter-journal-${name}-`))
  try {
    await fn({ dataDir, dir: join(dataDir, 'journal') })
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}
