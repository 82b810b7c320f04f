import { createHash } from 'node:crypto'
import type { DecodedBatch } from './batch-codec.ts'
import type { IncomingBatch } from './batch-inserter.ts'

/**
 * Replaying an outage one spilled batch per insert is slow: an outage at
 * 2,000 req/s leaves one 2,000-row batch per second, and each insert costs
 * ClickHouse a fixed ~20 ms of work per table and view whatever its size
 * (docs/BENCHMARKS.md, replay). So the replay inserts runs of spilled batches
 * together, up to a row cap, under one dedup token. Two rules keep that
 * exactly-once:
 *
 * 1. Only batches that no insert can have stored join a group (`mergeable`:
 *    their insert was refused before it was sent). A batch whose insert may
 *    have landed (a timeout, a reset, an error after the commit) replays
 *    alone under its own id, so ClickHouse drops it if it is already there.
 * 2. A group, once its insert may have been sent, is retried with exactly the
 *    same rows and token until it is acknowledged: the stores record the
 *    group before the insert (a durable intent file beside a spool segment,
 *    a marker on each Redis job plus the group's rows), so a crash cannot
 *    make a second, different group out of the same batches.
 */

/** Same member ids, same token; never equal to a batch id (those are UUIDs or names without the prefix). */
export function groupToken(batchIds: readonly string[]): string {
  return `grp-${createHash('sha256').update(batchIds.join('\n')).digest('hex').slice(0, 40)}`
}

/** The dedup token of one insert's worth of batches: a single batch keeps its own id. */
export function tokenOf(members: readonly IncomingBatch[]): string {
  return members.length === 1 ? members[0]!.batchId : groupToken(members.map((m) => m.batchId))
}

/** One insert's worth of batches, under tokenOf(members). */
export function mergeBatches(members: readonly IncomingBatch[]): IncomingBatch {
  if (members.length === 1) return members[0]!
  return {
    batchId: tokenOf(members),
    createdAt: members[0]!.createdAt,
    rows: members.flatMap((m) => m.rows),
  }
}

/** Whether `next` may join a group that already holds `rows` rows. */
export function canJoin(group: readonly DecodedBatch[], rows: number, next: DecodedBatch, maxRows: number) {
  if (group.length === 0) return true
  return group[0]!.mergeable && next.mergeable && rows + next.rows.length <= maxRows
}
