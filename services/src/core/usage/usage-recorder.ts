import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { InsertNotSentError, JournaledBatchError, SpillRefusedError } from '../storage/insert-errors.ts'
import type { EncodedRows, Warehouse } from '../storage/warehouse.ts'
import type { UsageJournal } from './usage-journal.ts'
import type { UsageBatch, UsageRow } from './usage-row.ts'

/**
 * Where a batch goes when ClickHouse did not take it. Implementations
 * (Redis via BullMQ, the disk spool) must keep the batch whole with its id, so
 * the replay reuses the same deduplication token.
 */
export interface SpillSink {
  spill(batch: UsageBatch, cause: unknown): Promise<void>
}

export interface RecorderStats {
  recorded: number
  inserted: number
  spilled: number
  /** Rows of batches ClickHouse did not take, left in the journal for its drainer. */
  parked: number
  pendingRows: number
  /** Of pendingRows, those the journal does not hold (it refused them, or there is none): lost if the process stops. */
  memoryOnlyRows: number
  inFlightBatches: number
  failedFlushes: number
}

export interface UsageRecorder {
  /**
   * Accepts a row; never waits on I/O, so the proxied request is never slowed.
   * The recorder owns the row from here: it sets `batch_id` when the batch is cut.
   */
  record(row: UsageRow): void
  /**
   * record(), and the promise to wait for before the client gets the end of
   * its answer: the journal's durable() (the first answer of a turn of the
   * event loop is written at once, undefined; later ones of the same turn
   * wait for one write at its end, and with JOURNAL_FSYNC_MS=0 for the
   * fdatasync). Undefined when there is nothing to wait for.
   */
  recordDurably(row: UsageRow): Promise<void> | undefined
  /** Inserts everything accepted so far (or hands it to the spill sink). */
  flush(): Promise<void>
  /** Flushes and stops the timer; rows recorded after close are still flushed by a final flush. */
  close(): Promise<void>
  stats(): RecorderStats
  onRecord(listener: (row: UsageRow) => void): () => void
}

export interface RecorderOptions {
  warehouse: Warehouse
  spill?: SpillSink
  maxRows: number
  flushMs: number
  insertTimeoutMs: number
  logger: Logger
  /**
   * Inserts one batch, quarantining rows ClickHouse rejects for good and
   * landing the rest; rejects only on transient failures (which spill).
   * Default: one plain insert, any failure spills.
   */
  insertBatch?: (
    batch: UsageBatch,
    opts: { rowsChecked: boolean; encoded?: EncodedRows },
  ) => Promise<{ inserted: number }>
  /**
   * The write-ahead journal (core/usage/usage-journal.ts): every row is written to
   * it in record(), a batch's dedup token is its journal position, and its
   * segment is acknowledged (deleted) once ClickHouse or Redis took it. A
   * journaled batch neither took is parked in the journal, whose drainer
   * delivers it (worker/journal-recovery.ts): the journal is the local outage
   * store, `spill` is then Redis only.
   */
  journal?: UsageJournal
  /** Whether a failed insert certainly stored nothing (worker/failure-classifier.ts); default: never assumed. */
  insertNeverSent?: (err: unknown) => boolean
}

/** Concurrent inserts per recorder, and batches allowed to wait for one (see launch). */
const MAX_IN_FLIGHT = 2
const MAX_WAITING = 16

/**
 * In-memory batches, one ClickHouse insert per batch, the batch id as
 * `insert_deduplication_token`. A failed insert goes whole to the spill sink;
 * with no sink (or when the sink fails too) the batch stays in memory and is
 * retried with the next flush, so an accepted row is only lost if the process
 * dies before the outage ends.
 */
export function createUsageRecorder(opts: RecorderOptions): UsageRecorder {
  let pending: UsageRow[] = []
  const retry: UsageBatch[] = []
  const inFlight = new Set<Promise<void>>()
  const waiting: UsageBatch[] = []
  const diverting = new Set<Promise<void>>()
  const listeners = new Set<(row: UsageRow) => void>()
  const stats = { recorded: 0, inserted: 0, spilled: 0, parked: 0, failedFlushes: 0 }
  const journal = opts.journal
  /** Journal segments of batches cut but not yet on disk: the insert waits for them (see usage-journal.ts). */
  const syncing = new Map<string, Promise<void>>()
  /** Batches whose segment holds every row (the journal refused none): they may be parked there. */
  const wholeInJournal = new Set<string>()
  /**
   * Journaled batches an earlier attempt may have stored (an insert that was
   * sent, a Redis add that may have landed): parked, they must never be
   * merged with others, whatever the last attempt's failure was.
   */
  const mayBeStored = new Set<string>()
  /** The journal's bytes of a batch, which its insert sends as they are (no second serialisation). */
  const encodedOf = new Map<string, EncodedRows>()
  let timer: NodeJS.Timeout | undefined = setInterval(() => void flush(), opts.flushMs)
  timer.unref()

  async function ship(batch: UsageBatch): Promise<void> {
    const synced = syncing.get(batch.batchId)
    if (synced) {
      // An fsync error is logged by the journal; the insert goes on (its rows are also in memory).
      await synced.catch(() => {})
      syncing.delete(batch.batchId)
    }
    try {
      // Read the counter only after the await: `stats.inserted += await ...`
      // reads it first and loses the other in-flight insert's rows.
      const encoded = encodedOf.get(batch.batchId)
      if (opts.insertBatch) {
        // Rows arrive typed from the gateway: no schema pass on the hot path.
        const out = await opts.insertBatch(batch, { rowsChecked: true, encoded })
        stats.inserted += out.inserted
      } else {
        await opts.warehouse.insertRows('requests', batch.rows, {
          dedupToken: batch.batchId,
          timeoutMs: opts.insertTimeoutMs,
          encoded,
        })
        stats.inserted += batch.rows.length
      }
      acknowledged(batch.batchId)
    } catch (insertError) {
      await divert(batch, insertError)
    }
  }

  function acknowledged(batchId: string) {
    syncing.delete(batchId)
    encodedOf.delete(batchId)
    wholeInJournal.delete(batchId)
    mayBeStored.delete(batchId)
    journal?.ack(batchId)
  }

  /**
   * A batch ClickHouse did not take: to the spill sink (Redis with the
   * journal on); a journaled batch it does not take stays in the journal
   * (parked); anything else is kept for the next flush.
   */
  async function divert(batch: UsageBatch, insertError: unknown): Promise<void> {
    stats.failedFlushes++
    const parkable = wholeInJournal.has(batch.batchId)
    if (parkable && !(opts.insertNeverSent?.(insertError) ?? false)) mayBeStored.add(batch.batchId)
    if (opts.spill) {
      try {
        // A journaled batch may be delivered again after a crash under the same token: never merged.
        const journaled = journal !== undefined && batch.batchId.startsWith('j-')
        await opts.spill.spill(batch, journaled ? new JournaledBatchError(insertError) : insertError)
        stats.spilled += batch.rows.length
        acknowledged(batch.batchId)
        return
      } catch (spillError) {
        // A copy may now sit in Redis (replayed alone under the same token): never merged either.
        if (parkable && !(spillError instanceof SpillRefusedError)) mayBeStored.add(batch.batchId)
        if (!parkable) {
          opts.logger.error(
            { batchId: batch.batchId, err: String(spillError) },
            'spill failed; keeping batch in memory',
          )
        }
      }
    } else if (!parkable) {
      opts.logger.warn({ batchId: batch.batchId, err: String(insertError) }, 'insert failed; will retry')
    }
    if (parkable) {
      const mergeable = !mayBeStored.has(batch.batchId)
      if (journal!.park(batch.batchId, { mergeable })) {
        syncing.delete(batch.batchId)
        encodedOf.delete(batch.batchId)
        wholeInJournal.delete(batch.batchId)
        mayBeStored.delete(batch.batchId)
        stats.parked += batch.rows.length
        return
      }
    }
    retry.push(batch)
  }

  function cut(): UsageBatch | undefined {
    if (pending.length === 0) return undefined
    // The journal's cut and the swap of `pending` happen in the same tick, so
    // the segment holds exactly this batch's rows (less any the journal refused).
    const journalCut = journal?.cut()
    const batchId = journalCut?.token ?? randomUUID()
    if (journalCut) syncing.set(batchId, journalCut.synced)
    if (journalCut?.complete) wholeInJournal.add(batchId)
    if (journalCut?.encoded) encodedOf.set(batchId, journalCut.encoded)
    // In place: a copy of every row cost ~8% of ingest throughput (allocation
    // and garbage collection, docs/BENCHMARKS.md); the recorder owns the rows.
    const rows = pending
    for (const r of rows) r.batch_id = batchId
    pending = []
    return { batchId, createdAt: Date.now(), rows }
  }

  // At most MAX_IN_FLIGHT inserts at once; later batches wait their turn, so
  // the insert timeout measures ClickHouse, not our own queue. Unbounded, a
  // burst of batches queued inside the engine, timed out and spilled rows
  // ClickHouse then also stored (docs/BENCHMARKS.md, ingest).
  function launch(batch: UsageBatch) {
    if (inFlight.size >= MAX_IN_FLIGHT) {
      waiting.push(batch)
      // ClickHouse is not keeping up: past this backlog the oldest batch takes the outage path.
      if (waiting.length > MAX_WAITING)
        track(diverting, divert(waiting.shift()!, new InsertNotSentError('insert backlog full')))
      return
    }
    track(inFlight, ship(batch))
  }

  function track(set: Set<Promise<void>>, work: Promise<void>) {
    const p = work.finally(() => {
      set.delete(p)
      const next = set === inFlight ? waiting.shift() : undefined
      if (next) launch(next)
    })
    set.add(p)
  }

  async function flush(): Promise<void> {
    for (const batch of retry.splice(0)) launch(batch)
    const batch = cut()
    if (batch) launch(batch)
    // Batches waiting for a slot are launched as earlier ones finish.
    while (inFlight.size > 0 || diverting.size > 0) await Promise.all([...inFlight, ...diverting])
  }

  function record(row: UsageRow) {
    journal?.append(row)
    pending.push(row)
    stats.recorded++
    for (const l of listeners) l(row)
    if (pending.length >= opts.maxRows) {
      const batch = cut()
      if (batch) launch(batch)
    }
  }

  return {
    record,
    recordDurably(row) {
      record(row)
      return journal?.durable()
    },
    flush,
    async close() {
      if (timer) clearInterval(timer)
      timer = undefined
      await flush()
      // One more pass: rows recorded while the last insert was in flight.
      if (pending.length > 0 || retry.length > 0) await flush()
    },
    stats: () => ({
      ...stats,
      pendingRows: [...retry, ...waiting].reduce((n, b) => n + b.rows.length, pending.length),
      memoryOnlyRows: journal
        ? [...retry, ...waiting].reduce(
            (n, b) => n + (wholeInJournal.has(b.batchId) ? 0 : b.rows.length),
            0,
          ) + journal.status().pendingRefused
        : [...retry, ...waiting].reduce((n, b) => n + b.rows.length, pending.length),
      inFlightBatches: inFlight.size,
    }),
    onRecord(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
