import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { UsageRecorder } from './usage-recorder.ts'
import type { UsageRow } from './usage-row.ts'

/**
 * Rows as they are recorded, for live mode, from every process. In the
 * embedded default that is this process's recorder. In server mode gateways
 * and API servers are separate processes, so each process also publishes its
 * own rows on a Redis channel (coalesced every PUBLISH_MS) and hears the
 * others'. Pub/sub stores nothing: a row missed here still reaches the
 * dashboard through ClickHouse at the next refresh. Rows carry the key prefix
 * only, never a key or any prompt text.
 */
export interface RowFeed {
  onRecord(listener: (row: UsageRow) => void): () => void
  /** Batches of rows heard from other processes (always 0 in the embedded default): their inserts follow. */
  batchesFromOthers(): number
  close(): Promise<void>
}

const CHANNEL = 'tokenmeter:live-rows'
const PUBLISH_MS = 50
const MAX_OUTBOX = 10_000

export function createRowFeed(opts: { recorder: UsageRecorder; redisUrl?: string; log: Logger }): RowFeed {
  const listeners = new Set<(row: UsageRow) => void>()
  const deliver = (row: UsageRow) => {
    for (const l of listeners) l(row)
  }
  const unlisten = opts.recorder.onRecord(deliver)
  if (!opts.redisUrl) {
    return {
      onRecord(listener) {
        listeners.add(listener)
        return () => listeners.delete(listener)
      },
      batchesFromOthers: () => 0,
      async close() {
        unlisten()
      },
    }
  }

  const instance = randomUUID()
  const redisOpts = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false }
  const pub = new Redis(opts.redisUrl, redisOpts)
  const sub = new Redis(opts.redisUrl, { ...redisOpts, enableOfflineQueue: true })
  const warn = (err: Error) => opts.log.warn({ err: err.message }, 'live row feed: redis unavailable')
  pub.on('error', warn)
  sub.on('error', warn)
  void sub.subscribe(CHANNEL).catch(warn)
  let fromOthers = 0
  sub.on('message', (_channel: string, message: string) => {
    const { from, rows } = JSON.parse(message) as { from: string; rows: UsageRow[] }
    if (from === instance) return
    fromOthers++
    for (const row of rows) deliver(row)
  })

  let outbox: UsageRow[] = []
  // Bounded: while Redis is away, live hints beyond this are dropped (ClickHouse still has the rows).
  const stopPublishing = opts.recorder.onRecord((row) => {
    if (outbox.length < MAX_OUTBOX) outbox.push(row)
  })
  const timer = setInterval(() => {
    if (outbox.length === 0 || pub.status !== 'ready') return
    const rows = outbox
    outbox = []
    pub.publish(CHANNEL, JSON.stringify({ from: instance, rows })).catch(warn)
  }, PUBLISH_MS).unref()

  return {
    onRecord(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    batchesFromOthers: () => fromOthers,
    async close() {
      clearInterval(timer)
      unlisten()
      stopPublishing()
      sub.disconnect()
      pub.disconnect()
    },
  }
}
