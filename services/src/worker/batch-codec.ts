import { gunzipSync, gzipSync } from 'node:zlib'
import { batchSchema, type UsageBatch } from '../core/usage/usage-row.ts'

/**
 * One encoding for a spilled batch, shared by the Redis queue and the disk
 * spool: gzip'd JSON (usage rows compress about 10x, which is what keeps the
 * Redis byte budget and the spool bound meaningful).
 */
export function encodeBatch(batch: UsageBatch, opts: { mergeable?: boolean } = {}): Buffer {
  const body = opts.mergeable ? { ...batch, mergeable: true } : batch
  return gzipSync(Buffer.from(JSON.stringify(body)), { level: 6 })
}

export class UndecodableBatchError extends Error {}

export interface DecodedBatch {
  batchId: string
  createdAt: number
  rows: unknown[]
  /**
   * No insert of this batch can have reached ClickHouse before it was spilled
   * (the connection was refused), so the replay may insert it together with
   * other such batches under one dedup token (replay-groups.ts). Absent in
   * payloads written before the flag existed: they replay alone.
   */
  mergeable: boolean
}

/** Decodes and checks the envelope; row-level validity is the inserter's job (bad rows are quarantined, not the batch). */
export function decodeBatch(payload: Buffer): DecodedBatch {
  let parsed: unknown
  try {
    parsed = JSON.parse(gunzipSync(payload).toString('utf8'))
  } catch (err) {
    throw new UndecodableBatchError(`payload is not gzip'd JSON: ${(err as Error).message}`)
  }
  const envelope = batchSchema.pick({ batchId: true, createdAt: true }).safeParse(parsed)
  const rows = (parsed as { rows?: unknown }).rows
  if (!envelope.success || !Array.isArray(rows)) {
    throw new UndecodableBatchError('payload is not a usage batch (batchId, createdAt, rows)')
  }
  return { ...envelope.data, rows, mergeable: (parsed as { mergeable?: unknown }).mergeable === true }
}
