import { z } from 'zod'

/**
 * Ops for outages (/api/admin/ops/*): what waits in Redis and on disk, the
 * replay's progress, the write-ahead journal and the quarantine. The ops page
 * and `npm run ops` read these answers; docs/OUTAGES.md explains them.
 */
const epochMs = z.number().describe('milliseconds since the epoch')
const ageSeconds = z
  .number()
  .optional()
  .describe('age of the oldest waiting row, in seconds; absent when none waits')

const loopState = z.enum(['idle', 'replaying', 'backing-off', 'stopped'])
const storeProgress = z.object({
  state: loopState,
  batches: z.number(),
  inserts: z.number().describe('ClickHouse inserts that carried the batches (runs of batches are merged)'),
  rows: z.number(),
  quarantinedRows: z.number(),
  backoffMs: z.number(),
  lastError: z.string().optional(),
  lastBatchAt: epochMs.optional(),
})

export const opsStatusResponse = z.object({
  mode: z.enum(['redis+disk', 'disk']).describe('where the recorder spills while ClickHouse is unreachable'),
  journal: z
    .object({
      enabled: z.boolean(),
      dir: z.string(),
      bytes: z.number().describe('bytes of segments not yet acknowledged'),
      maxBytes: z.number(),
      segments: z.number(),
      compressedSegments: z
        .number()
        .describe(
          'of the segments waiting for ClickHouse, those held compressed (bytes counts their compressed size)',
        ),
      oldestAt: epochMs.optional(),
      oldestAgeSeconds: ageSeconds,
      rejectedRows: z.number().describe('rows the journal could not take (full, or a write error)'),
      pendingRefused: z.number().describe('of those, rows of the batch being collected (not cut yet)'),
      lastError: z.string().optional(),
      fsyncMs: z.number(),
      recovery: z.object({
        state: z.enum(['idle', 'recovering', 'waiting', 'done', 'stopped']),
        segmentsFound: z.number(),
        segmentsDone: z.number(),
        rowsFound: z.number(),
        rowsDone: z.number(),
        inserts: z
          .number()
          .describe('ClickHouse inserts that carried them: runs of parked segments go in one insert'),
        tornTails: z.number(),
        damagedRecords: z.number(),
        compaction: z
          .object({
            segments: z.number(),
            bytesBefore: z.number().describe('their size uncompressed'),
            bytesAfter: z.number().describe('their size compressed'),
          })
          .describe('parked segments compressed while they waited for ClickHouse, by this process'),
        lastError: z.string().optional(),
      }),
    })
    .optional()
    .describe('absent with JOURNAL=off'),
  clickhouse: z.object({ reachable: z.boolean() }),
  redis: z
    .object({
      connected: z.boolean(),
      jobs: z.object({ waiting: z.number(), active: z.number(), delayed: z.number(), failed: z.number() }),
      bytes: z.number(),
      maxBytes: z.number(),
      overBudget: z.boolean(),
      overBudgetSpills: z.number(),
      failedSpills: z.number(),
      oldestAt: epochMs.optional(),
      oldestAgeSeconds: ageSeconds,
      durabilityWarnings: z.array(z.string()),
      lastError: z.string().optional(),
    })
    .optional()
    .describe('absent without REDIS_URL, or while Redis does not answer'),
  disk: z.object({
    dir: z.string(),
    segments: z.number(),
    batches: z.number(),
    bytes: z.number(),
    maxBytes: z.number(),
    full: z.boolean(),
    oldestAt: epochMs.optional(),
    oldestAgeSeconds: ageSeconds,
    rejected: z.number(),
    lastError: z.string().optional(),
  }),
  replay: storeProgress.extend({
    startedAt: epochMs.optional(),
    corruptSegments: z.number(),
    rowsPerSecond: z.number().describe('rows replayed per second over the last 10 s'),
    stores: z.object({ disk: storeProgress, redis: storeProgress }),
    runsHere: z.boolean().describe('whether this process runs the replay (the worker role)'),
  }),
  quarantine: z.object({ entries: z.number(), rows: z.number() }),
  rowsDropped: z
    .number()
    .describe('rows that left our custody without reaching ClickHouse or the quarantine; must stay 0'),
  policies: z.object({ redisOverBudget: z.string(), spoolFull: z.string(), corruptSegment: z.string() }),
})
export type OpsStatus = z.infer<typeof opsStatusResponse>

export const spilledBatch = z.object({
  batchId: z.string(),
  store: z.enum(['redis', 'disk', 'journal']),
  createdAt: epochMs,
  rows: z.number(),
  bytes: z.number(),
  location: z.string().describe('the Redis job state, or the spool or journal segment holding the batch'),
})
export type SpilledBatch = z.infer<typeof spilledBatch>
export const batchesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
})
export const batchesResponse = z.object({ batches: z.array(spilledBatch) })
export type BatchesResponse = z.infer<typeof batchesResponse>
export const batchParams = z.strictObject({ batchId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/) })
export const batchResponse = spilledBatch.extend({
  rowsData: z.array(z.unknown()).describe('the batch rows as spilled'),
})

/**
 * A quarantine entry is a forensic record, written by several parts (the
 * inserter, the replay, the journal recovery) and kept as it was written: the
 * API passes it on whole, the fields below are the ones every entry has.
 */
const quarantineSummary = z.looseObject({
  id: z.string(),
  kind: z.enum(['rows', 'segment']),
  batchId: z.string(),
  reason: z.string(),
  quarantinedAt: z.string(),
  rowCount: z.number(),
  file: z
    .string()
    .optional()
    .describe("kind 'segment': the damaged file, kept byte for byte (export it with ?raw=1)"),
})
export const quarantineListResponse = z.object({ entries: z.array(quarantineSummary) })
export const quarantineEntry = quarantineSummary.extend({
  rows: z.array(z.unknown()).optional().describe("kind 'rows': the rejected rows as they were received"),
  problems: z.array(z.unknown()).optional(),
})
export const quarantineParams = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_.-]{1,160}$/) })
export const quarantineQuery = z.strictObject({
  raw: z.enum(['0', '1']).default('0').describe("1: the damaged segment's bytes (application/octet-stream)"),
})
export const quarantineRetryResponse = z.object({
  id: z.string(),
  inserted: z.number(),
  quarantined: z.number(),
  resolved: z.boolean().describe('every row is in ClickHouse now, and the entry is gone'),
})
export const quarantineDeleteResponse = z.object({ id: z.string(), deleted: z.literal(true) })
