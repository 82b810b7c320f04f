import type { EncodedRows, Warehouse } from '../core/storage/warehouse.ts'
import { type UsageBatch, type UsageRow, usageRowSchema } from '../core/usage/usage-row.ts'
import { classifyFailure } from './failure-classifier.ts'
import type { QuarantineStore } from './quarantine-store.ts'

/** A batch id as received from a spill store: rows are not trusted until checked. */
export interface IncomingBatch {
  batchId: string
  createdAt: number
  rows: readonly unknown[]
}

export interface InsertOutcome {
  inserted: number
  quarantined: number
}

/**
 * `rowsChecked`: the rows were built in this process as typed UsageRows (the
 * recorder's live batches), so the row schema check is skipped; ClickHouse
 * still rejects what it cannot store, and those rows are isolated and
 * quarantined the same way. Batches read back from a spill store are checked.
 */
export type BatchInserter = (
  batch: UsageBatch | IncomingBatch,
  /** `encoded`: the rows already serialised for the insert (the journal's bytes); used for the whole batch only. */
  opts?: { rowsChecked?: boolean; encoded?: EncodedRows },
) => Promise<InsertOutcome>

export class TransientInsertError extends Error {
  readonly cause: unknown
  constructor(cause: unknown) {
    super(`transient insert failure: ${String((cause as Error)?.message ?? cause)}`)
    this.cause = cause
  }
}

const REASON_MAX = 500

/**
 * Inserts one batch exactly once however often it is called:
 * - Rows failing our row schema are quarantined up front (unless the caller
 *   built them itself: `rowsChecked`).
 * - The rest go in one insert whose dedup token is the batch id.
 * - If ClickHouse rejects the data itself (a permanent error), the batch is
 *   split in halves until the bad rows are isolated; every piece carries a
 *   token derived from the batch id and its row range, so a repeat of the
 *   same batch (a replay after a crash) makes the same pieces with the same
 *   tokens and nothing is counted twice.
 * - Transient failures throw TransientInsertError: the caller spills or retries.
 */
export function createBatchInserter(deps: {
  warehouse: Warehouse
  quarantine: QuarantineStore
  timeoutMs: number
}): BatchInserter {
  const { warehouse, quarantine, timeoutMs } = deps

  async function tryInsert(
    rows: UsageRow[],
    token: string,
    whole: boolean,
    encoded?: EncodedRows,
  ): Promise<unknown | undefined> {
    try {
      await warehouse.insertRows('requests', rows, { dedupToken: token, timeoutMs, encoded })
      return undefined
    } catch (err) {
      if (classifyFailure(err) !== 'transient') return err
      // Pieces of a split batch may already be stored under their own tokens:
      // the batch must then replay alone, so the failure no longer reads as
      // "never sent" (failure-classifier.ts), whatever its code.
      throw new TransientInsertError(
        whole ? err : new Error(`after part of the batch landed: ${(err as Error)?.message ?? err}`),
      )
    }
  }

  /** Lands what ClickHouse accepts of rows[lo..hi) of the batch; collects the rows it rejects. */
  async function land(
    rows: UsageRow[],
    base: string,
    lo: number,
    whole: boolean,
    bad: { row: unknown; reason: string }[],
    encoded?: EncodedRows,
  ): Promise<number> {
    const token = whole ? base : `${base}_r${lo}-${lo + rows.length}`
    const err = await tryInsert(rows, token, whole, whole ? encoded : undefined)
    if (err === undefined) return rows.length
    if (rows.length === 1) {
      bad.push({ row: rows[0], reason: String((err as Error).message ?? err).slice(0, REASON_MAX) })
      return 0
    }
    const mid = Math.ceil(rows.length / 2)
    const a = await land(rows.slice(0, mid), base, lo, false, bad)
    const b = await land(rows.slice(mid), base, lo + mid, false, bad)
    return a + b
  }

  return async function insertBatch(batch, { rowsChecked = false, encoded } = {}) {
    const bad: { row: unknown; reason: string }[] = []
    const good: UsageRow[] = rowsChecked ? (batch.rows as UsageRow[]) : []
    for (const row of rowsChecked ? [] : batch.rows) {
      const parsed = usageRowSchema.safeParse(row)
      if (parsed.success) good.push(parsed.data)
      else {
        const issue = parsed.error.issues[0]
        bad.push({
          row,
          reason: `row schema: ${issue?.path.join('.')}: ${issue?.message}`.slice(0, REASON_MAX),
        })
      }
    }
    // The encoded bytes hold every row: only when none was set aside by the schema check.
    const whole = rowsChecked || bad.length === 0 ? encoded : undefined
    const inserted = good.length > 0 ? await land(good, batch.batchId, 0, true, bad, whole) : 0
    if (bad.length > 0) {
      await quarantine.put({
        id: batch.batchId,
        kind: 'rows',
        batchId: batch.batchId,
        reason: bad[0]!.reason,
        rowCount: bad.length,
        rows: bad.map((b) => ({ reason: b.reason, row: b.row })),
      })
    }
    return { inserted, quarantined: bad.length }
  }
}
