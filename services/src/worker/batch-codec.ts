import { gunzipSync, gzipSync } from 'node:zlib'
import { batchSchema, type UsageBatch } from '../core/usage-row.ts'

/**
 * One encoding for a spilled batch, shared by the Redis queue and the disk
 * spool: gzip'd JSON (usage rows compress about 10x, which is what keeps the
 * Redis byte budget and the spool bound meaningful).
 */
export function encodeBatch(batch: UsageBatch): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(batch)), { level: 6 })
}

export class UndecodableBatchError extends Error {}

/** Decodes and checks the envelope; row-level validity is the inserter's job (bad rows are quarantined, not the batch). */
export function decodeBatch(payload: Buffer): { batchId: string; createdAt: number; rows: unknown[] } {
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
  return { ...envelope.data, rows }
}
