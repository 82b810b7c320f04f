import type { Logger } from 'pino'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import type { UsageRecorder } from '../core/usage/usage-recorder.ts'
import { toClickHouseTime, type UsageRow } from '../core/usage/usage-row.ts'
import {
  matchesRow,
  type ParsedFilter,
  resolveFilter,
  type Scope,
  scopeKey,
  type UsageFilter,
  whereClause,
} from './filters.ts'
import { kpisFromTotals, queryKpis } from './queries/kpis.ts'
import {
  bucketExpr,
  emptyTotals,
  type MetricRow,
  metricsSelect,
  readTotals,
  type Totals,
} from './queries/sql.ts'
import { bucketIndex } from './time-range.ts'

/**
 * Live mode. Subscribers with the same filter and scope share one topic; a
 * topic holds a base snapshot from ClickHouse plus the rows the recorder has
 * seen since (`onRecord` fires before a row is flushed). A row stays in the
 * overlay until a later snapshot finds its request_id in `requests`, so it is
 * counted exactly once once ClickHouse has it. Rows that land while a snapshot
 * is being read can be missed by that snapshot for one refresh; the next one
 * (scheduled right away when that can have happened) corrects it.
 *
 * Pushes are coalesced: a topic renders at most every PUSH_MS, and a
 * subscriber whose socket has more than MAX_BUFFERED bytes queued is skipped
 * and later sent only the newest message, so memory per slow client is
 * bounded by one message plus the socket buffer.
 *
 * Work is bounded too, whatever subscribers do: a topic's refresh is three
 * ClickHouse queries over one filter's range, at most `maxRefreshes` refreshes
 * run at once across the hub (the rest wait in turn, first come first served),
 * a topic whose last subscriber left before its turn costs nothing, and while
 * `underPressure()` says the process is overloaded only first snapshots are
 * read (the in-memory overlay keeps the numbers moving). How many topics one
 * user can create is limited by live.routes.ts (sockets and subscribes per user).
 */
export interface LiveSubscriber {
  send(message: string): void
  bufferedAmount(): number
}

export interface LiveHubStats {
  topics: number
  subscribers: number
  pendingRows: number
  /** Refreshes running now, waiting their turn, and started since start. */
  refreshesRunning: number
  refreshesQueued: number
  refreshesStarted: number
  /** Snapshots sent to sockets since start (unchanged numbers are not sent). */
  pushes: number
}

export interface LiveHub {
  subscribe(parsed: ParsedFilter, scope: Scope, sub: LiveSubscriber): () => void
  stats(): LiveHubStats
  close(): void
}

export interface LiveHubOptions {
  warehouse: Warehouse
  store: AdminStore
  /** Where recorded rows come from: the recorder, or the cross-process row feed. */
  recorder: Pick<UsageRecorder, 'onRecord'>
  pushMs?: number
  /** Refresh from ClickHouse this often even without local rows (other processes' traffic, sliding ranges). */
  idleRefreshMs?: number
  busyRefreshMs?: number
  maxBuffered?: number
  maxPendingRows?: number
  /** ClickHouse refreshes running at once across all topics (default 2). */
  maxRefreshes?: number
  /** True while the process is overloaded: only first snapshots are refreshed. */
  underPressure?: () => boolean
  log: Logger
}

interface PendingRow {
  ms: number
  user: string
  totals: Totals
}

interface Base {
  points: Totals[]
  users: Set<string>[]
  p50: number | null
  p95: number | null
}

interface SubState {
  sub: LiveSubscriber
  version: number
}

interface Topic {
  key: string
  parsed: ParsedFilter
  scope: Scope
  filter: UsageFilter
  subs: Set<SubState>
  base?: Base
  pending: Map<string, PendingRow>
  version: number
  message?: string
  /** What the last pushed snapshot showed (not when): an unchanged refresh pushes nothing. */
  shown?: string
  dirty: boolean
  refreshing: boolean
  queued: boolean
  nextRefreshAt: number
}

function canonical(parsed: ParsedFilter, scope: Scope): string {
  const entries = Object.entries(parsed)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, Array.isArray(v) ? [...v].sort() : v] as const)
    .sort(([a], [b]) => a.localeCompare(b))
  return `${scopeKey(scope)}|${JSON.stringify(entries)}`
}

function rowTotals(row: UsageRow): Totals {
  return {
    requests: 1,
    errors: row.status_code >= 400 || row.error_class !== '' ? 1 : 0,
    inputTokens: row.input_tokens,
    outputTokens: row.output_tokens,
    cachedTokens: row.cached_read_tokens,
    cacheWriteTokens: row.cache_write_tokens,
    reasoningTokens: row.reasoning_tokens ?? 0,
    unpricedRequests: row.price_unknown ? 1 : 0,
    spendUsd: Number(row.cost_usd),
    activeUsers: 0,
  }
}

function add(into: Totals, t: Totals) {
  into.requests += t.requests
  into.errors += t.errors
  into.inputTokens += t.inputTokens
  into.outputTokens += t.outputTokens
  into.cachedTokens += t.cachedTokens
  into.cacheWriteTokens += t.cacheWriteTokens
  into.reasoningTokens += t.reasoningTokens
  into.unpricedRequests += t.unpricedRequests
  into.spendUsd += t.spendUsd
}

const rowMs = (startedAt: string) => Date.parse(`${startedAt.replace(' ', 'T')}Z`)

export function createLiveHub(opts: LiveHubOptions): LiveHub {
  const wh = opts.warehouse
  const pushMs = opts.pushMs ?? 250
  const idleRefreshMs = opts.idleRefreshMs ?? 5_000
  const busyRefreshMs = opts.busyRefreshMs ?? 1_000
  const maxBuffered = opts.maxBuffered ?? 256 * 1024
  const maxPending = opts.maxPendingRows ?? 50_000
  const maxRefreshes = opts.maxRefreshes ?? 2
  const underPressure = opts.underPressure ?? (() => false)
  const topics = new Map<string, Topic>()
  // Snapshots pushed to sockets since start; an unchanged refresh pushes none.
  let pushes = 0
  const queue: Topic[] = []
  let running = 0
  let started = 0

  /** Runs a topic's refresh when a slot is free, else queues it once. */
  function schedule(t: Topic) {
    if (t.refreshing || t.queued) return
    if (running >= maxRefreshes) {
      t.queued = true
      queue.push(t)
      return
    }
    running++
    started++
    void refresh(t).finally(() => {
      running--
      for (let next = queue.shift(); next; next = queue.shift()) {
        next.queued = false
        // Its subscribers left while it waited: nothing to compute.
        if (topics.get(next.key) !== next) continue
        schedule(next)
        break
      }
    })
  }

  const unlisten = opts.recorder.onRecord((row) => {
    const ms = rowMs(row.started_at)
    for (const t of topics.values()) {
      if (t.pending.size >= maxPending) continue
      // Rows past `to` are kept: a sliding preset's next refresh moves `to` past them.
      if (ms < t.filter.range.fromMs || !matchesRow(t.filter, t.scope, row)) continue
      t.pending.set(row.request_id, { ms, user: row.user_id, totals: rowTotals(row) })
      t.dirty = true
      t.nextRefreshAt = Math.min(t.nextRefreshAt, Date.now() + busyRefreshMs)
    }
  })

  async function refresh(t: Topic) {
    t.refreshing = true
    try {
      // Sliding presets move with the clock: re-resolve on every refresh.
      const f = resolveFilter(t.parsed)
      const src = f.range.source
      const where = whereClause(f, t.scope, src === 'requests' ? 'started_at' : 'bucket')
      const [kpis, rows] = await Promise.all([
        queryKpis(wh, f, t.scope),
        wh.query<MetricRow & { b: number; users: string[] }>(
          `SELECT ${bucketExpr(f.range.granularity, src)} AS b, ${metricsSelect(src)}, groupUniqArray(100000)(user_id) AS users
           FROM ${src} WHERE ${where.sql} GROUP BY b`,
          { ...where.params, tz: f.range.tz },
        ),
      ])
      const span = { fromMs: f.range.buckets[0]!, toMs: f.range.toMs, buckets: f.range.buckets }
      const base: Base = {
        points: f.range.buckets.map(() => emptyTotals()),
        users: f.range.buckets.map(() => new Set<string>()),
        p50: kpis.latencyP50Ms,
        p95: kpis.latencyP95Ms,
      }
      for (const r of rows) {
        const i = bucketIndex(span, Number(r.b) * 1000)
        if (i < 0) continue
        base.points[i] = readTotals(r)
        base.users[i] = new Set(r.users.map(String))
      }
      // Which overlay rows has ClickHouse got by now? Those are in (or about to be in) the base.
      let removed = 0
      const ids = [...t.pending.keys()]
      if (ids.length > 0) {
        let minMs = Number.POSITIVE_INFINITY
        for (const p of t.pending.values()) minMs = Math.min(minMs, p.ms)
        const found = await wh.query<{ id: string }>(
          `SELECT toString(request_id) AS id FROM requests
           WHERE started_at >= {min:DateTime64(3, 'UTC')} AND request_id IN {ids:Array(UUID)}`,
          { min: toClickHouseTime(minMs), ids },
        )
        for (const { id } of found) if (t.pending.delete(id)) removed++
      }
      for (const [id, p] of t.pending) if (p.ms < f.range.fromMs) t.pending.delete(id)
      t.filter = f
      t.base = base
      t.dirty = true
      const busy = removed > 0 || t.pending.size > 0
      t.nextRefreshAt = Date.now() + (busy ? busyRefreshMs : idleRefreshMs)
    } catch (err) {
      // Keep the last base; the overlay still moves. Try again shortly.
      opts.log.warn({ err: String(err), topic: t.key }, 'live refresh failed')
      t.nextRefreshAt = Date.now() + busyRefreshMs
    } finally {
      t.refreshing = false
    }
  }

  function render(t: Topic): { message: string; shown: string } | undefined {
    const base = t.base
    if (!base) return undefined
    const f = t.filter
    const points = base.points.map((p) => ({ ...p }))
    const users = base.users.map((s) => new Set(s))
    for (const p of t.pending.values()) {
      const i = bucketIndex({ fromMs: f.range.fromMs, toMs: f.range.toMs, buckets: f.range.buckets }, p.ms)
      if (i < 0) continue
      add(points[i]!, p.totals)
      users[i]!.add(p.user)
    }
    const all = new Set<string>()
    const total = emptyTotals()
    points.forEach((p, i) => {
      p.activeUsers = users[i]!.size
      add(total, p)
      for (const u of users[i]!) all.add(u)
    })
    total.activeUsers = all.size
    const buckets = f.range.buckets.map((ms) => new Date(ms).toISOString())
    const message = JSON.stringify({
      type: 'snapshot',
      at: new Date().toISOString(),
      kpis: kpisFromTotals(total, f, base.p50, base.p95),
      series: {
        granularity: f.range.granularity,
        source: f.range.source,
        buckets,
        series: [{ id: 'total', name: 'Total', points }],
      },
    })
    // The numbers and buckets a viewer sees; a sliding range's moving `to` alone is no news.
    const shown = JSON.stringify([total, points, buckets, base.p50, base.p95])
    return { message, shown }
  }

  function deliver(t: Topic) {
    if (!t.message) return
    for (const s of t.subs) {
      if (s.version === t.version) continue
      // A slow reader is skipped, not queued for: it gets the newest message once it drains.
      if (s.sub.bufferedAmount() > maxBuffered) continue
      s.version = t.version
      s.sub.send(t.message)
      pushes++
    }
  }

  const timer = setInterval(() => {
    const now = Date.now()
    const pressed = underPressure()
    for (const t of topics.values()) {
      if (now >= t.filter.range.toMs) t.nextRefreshAt = 0
      // Under pressure, topics that already show numbers wait; new ones still get their first.
      if (!t.refreshing && now >= t.nextRefreshAt && !(pressed && t.base)) schedule(t)
      if (t.dirty) {
        const r = render(t)
        if (r) {
          t.dirty = false
          // Push only what changed: viewers refresh what they show on a push, so an idle
          // refresh that found the same numbers must not make every viewer query again.
          if (r.shown !== t.shown) {
            t.shown = r.shown
            t.message = r.message
            t.version++
          }
        }
      }
      deliver(t)
    }
  }, pushMs)
  timer.unref()

  return {
    subscribe(parsed, scope, sub) {
      const key = canonical(parsed, scope)
      let t = topics.get(key)
      if (!t) {
        t = {
          key,
          parsed,
          scope,
          filter: resolveFilter(parsed),
          subs: new Set(),
          pending: new Map(),
          version: 0,
          dirty: false,
          refreshing: false,
          queued: false,
          nextRefreshAt: 0,
        }
        topics.set(key, t)
        schedule(t)
      }
      const state: SubState = { sub, version: -1 }
      t.subs.add(state)
      deliver(t)
      const topic = t
      return () => {
        topic.subs.delete(state)
        if (topic.subs.size === 0) topics.delete(key)
      }
    },
    stats() {
      let subscribers = 0
      let pendingRows = 0
      for (const t of topics.values()) {
        subscribers += t.subs.size
        pendingRows += t.pending.size
      }
      return {
        topics: topics.size,
        subscribers,
        pendingRows,
        refreshesRunning: running,
        refreshesQueued: queue.length,
        refreshesStarted: started,
        pushes,
      }
    },
    close() {
      clearInterval(timer)
      unlisten()
      topics.clear()
      queue.length = 0
    },
  }
}
