import { fileURLToPath } from 'node:url'
import { Pool, WebSocket } from 'undici'
import { startChild } from './lib/child.ts'
import { commandFor, emit, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, percentile, ratio } from './lib/stats.ts'
import { openViewer, type View, type Viewer } from './lib/usage-page-viewer.ts'

/**
 * Two measurements of live mode, our gateway and API in one process on the
 * embedded engine, as the default deployment runs; subscribers and traffic
 * come from this process. `--live-part=latency` or `--live-part=queries` runs one.
 *
 * Latency: from a request's completion at the gateway (its client has read
 * the last byte) to the first WebSocket message, on each of 100 subscribers
 * of GET /api/live, whose totals include it.
 *
 * Queries: ClickHouse statements per second (the server's own
 * tokenmeter_clickhouse_queries_total) with 100 viewers of the Usage page in
 * live mode on 10 distinct filters, idle and under steady traffic, against
 * the same viewers re-requesting after every push.
 */
const args = parseArgs()
const part = process.argv.find((a) => a.startsWith('--live-part='))?.slice(12)
const SUBSCRIBERS = 100
const RATE = 50
const SECONDS = args.quick ? 6 : 30
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))

const upstream = await startChild(process.execPath, [here('./upstream.process.ts'), '--latency-ms=25'], {
  marker: 'READY ',
})
const gw = await startChild(
  process.execPath,
  [here('./gateway.process.ts'), `--upstream=${upstream.ready}`, '--api', `--viewers=${SUBSCRIBERS}`],
  {
    marker: 'READY ',
    timeoutMs: 120_000,
  },
)
const info = JSON.parse(gw.ready) as { url: string; key: string; viewerKeys: string[]; adminToken: string }
const rows: (string | number)[][] = []
const tables: Table[] = []

async function latency() {
  // Each subscriber keeps (arrival time, requests in its totals) for every message.
  const seen: { at: number; requests: number }[][] = []
  const sockets: WebSocket[] = []
  await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const log: { at: number; requests: number }[] = []
      seen.push(log)
      // One person per socket: each has the product's per-user live socket allowance.
      const ws = new WebSocket(`${info.url.replace('http', 'ws')}/api/live?range=24h`, {
        headers: { authorization: `Bearer ${info.viewerKeys[i]}` },
      } as never)
      sockets.push(ws)
      return new Promise<void>((resolve, reject) => {
        ws.onmessage = (ev) => {
          const msg = JSON.parse(String(ev.data)) as { type: string; kpis?: { requests: number } }
          if (msg.type === 'snapshot' && msg.kpis) {
            log.push({ at: performance.now(), requests: msg.kpis.requests })
            resolve()
          }
        }
        ws.onerror = () => reject(new Error(`subscriber ${i} failed to connect`))
      })
    }),
  )
  log(`${SUBSCRIBERS} subscribers connected`)
  const baseline = Math.max(...seen.map((s) => s.at(-1)!.requests))

  // Traffic: completions stamped in the order they happen.
  const completions: number[] = []
  const target = {
    name: 'tokenmeter',
    origin: info.url,
    path: '/v1/chat/completions',
    headers: { authorization: `Bearer ${info.key}` },
    body: JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'live latency' }],
      max_tokens: 16,
    }),
  }
  const pool = new Pool(info.url, { connections: 64, pipelining: 1 })
  const total = RATE * SECONDS
  const t0 = performance.now()
  const inflight: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const due = t0 + (i / RATE) * 1000
    const wait = due - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    inflight.push(
      pool
        .request({
          method: 'POST',
          path: target.path,
          headers: { 'content-type': 'application/json', ...target.headers },
          body: target.body,
        })
        .then(async (res) => {
          await res.body.text()
          if (res.statusCode === 200) completions.push(performance.now())
        }),
    )
  }
  await Promise.all(inflight)
  await new Promise((r) => setTimeout(r, 3_000))
  await pool.close()

  const latencies: number[] = []
  let missing = 0
  for (const log of seen) {
    let j = 0
    completions.forEach((done, k) => {
      while (j < log.length && log[j]!.requests < baseline + k + 1) j++
      if (j < log.length) latencies.push(Math.max(0, log[j]!.at - done))
      else missing++
    })
  }
  for (const ws of sockets) ws.close()
  rows.push([
    SUBSCRIBERS,
    `${RATE} req/s for ${SECONDS} s`,
    completions.length,
    fmt(percentile(latencies, 50), 0),
    fmt(percentile(latencies, 95), 0),
    fmt(percentile(latencies, 99), 0),
    fmt(Math.max(...latencies), 0),
    missing,
  ])
  log(
    `live p95 ${fmt(percentile(latencies, 95), 0)} ms over ${latencies.length} observations, ${missing} missing`,
  )
  tables.push({
    id: 'live',
    title: 'Live latency: request completed at the gateway -> visible on a subscribed WebSocket (ms)',
    command: `${commandFor('live', args)}${part ? ' --live-part=latency' : ''}`,
    columns: ['Subscribers', 'Traffic', 'Requests', 'p50', 'p95', 'p99', 'max', 'Never seen'],
    rows,
    notes: [
      'Latency per (request, subscriber): first message whose kpis.requests counts the k-th completion, minus the time the client read the k-th answer to its end.',
      'All subscribers watch the same filter (one shared topic, 100 leads of one team); the hub coalesces pushes to at most one every 250 ms.',
    ],
  })
}

// ---- Queries: ClickHouse statements per second with 100 live viewers on 10 filters. ----

const QUERY_RATE = 20
const PHASE_S = args.quick ? 12 : 30
/** Ten distinct filters (ten live topics), each watched by ten viewers in the page's four views. */
const FILTERS: Record<string, string>[] = [
  { range: '24h' },
  { range: '24h', models: 'gpt-4o-mini' },
  { range: '24h', tags: 'prod' },
  { range: '24h', tags: 'dev' },
  { range: '24h', projects: 'alpha' },
  { range: '24h', projects: 'beta' },
  { range: '24h', apps: 'cursor' },
  { range: '24h', apps: 'sdk' },
  { range: '24h', status: 'error' },
  { range: '7d' },
]
const VIEWS: View[] = ['user', 'team', 'project', 'app']

interface Counters {
  selects: number
  refreshes: number
}
async function counters(): Promise<Counters> {
  const res = await fetch(`${info.url}/metrics`, { headers: { authorization: `Bearer ${info.adminToken}` } })
  const text = await res.text()
  const num = (re: RegExp) => {
    const m = re.exec(text)
    if (!m) throw new Error(`metric ${re} missing from /metrics`)
    return Number(m[1])
  }
  return {
    selects: num(/^tokenmeter_clickhouse_queries_total\{kind="select"\} (\d+)/m),
    refreshes: num(/^tokenmeter_live_refreshes_started_total (\d+)/m),
  }
}

/** Gateway traffic at a steady rate until stopped; tags, projects and apps rotate so most filters see rows. */
function steadyTraffic(pool: Pool, ratePerS: number): { stop(): Promise<number> } {
  let stopped = false
  let sent = 0
  let ok = 0
  const inflight = new Set<Promise<void>>()
  const t0 = performance.now()
  const loop = (async () => {
    while (!stopped) {
      const wait = t0 + (sent / ratePerS) * 1000 - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      if (stopped) break
      const i = sent++
      const p = pool
        .request({
          method: 'POST',
          path: '/v1/chat/completions',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${info.key}`,
            'x-tags': i % 2 ? 'prod' : 'dev',
            'x-project': i % 3 ? 'alpha' : 'beta',
            'x-client-app': i % 2 ? 'cursor' : 'sdk',
          },
          body: JSON.stringify({
            model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: 'live' }],
            max_tokens: 16,
          }),
        })
        .then(async (res) => {
          await res.body.text()
          if (res.statusCode === 200) ok++
        })
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
    }
  })()
  return {
    async stop() {
      stopped = true
      await loop
      await Promise.all(inflight)
      return ok
    },
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 600_000) {
  const t0 = performance.now()
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function queries() {
  const pool = new Pool(info.url, { connections: 32, pipelining: 1 })
  const viewers: Viewer[] = []
  interface PhaseStats {
    label: string
    traffic: boolean
    seconds: number
    selects: number
    hubRefreshes: number
    pushes: number
    reRequests: number
    /** Re-requests refused (503 overloaded: the API sheds dashboard queries when its event loop lags). */
    shed: number
    p50: number
    drain: number
  }
  const phases: Record<string, PhaseStats> = {}
  const sum = (f: (v: Viewer) => number) => viewers.reduce((n, v) => n + f(v), 0)

  /**
   * One phase of PHASE_S seconds. Its statements are counted until every
   * request it caused was answered (the viewers pause, so they ask nothing
   * more): on a saturated engine a backlog runs on after the phase, and
   * counting only inside the window would measure throughput, not what the
   * viewers asked of ClickHouse. The drain is reported beside it.
   */
  async function phase(name: string, opts: { traffic: boolean; label: string }) {
    const traffic = opts.traffic ? steadyTraffic(pool, QUERY_RATE) : undefined
    // Traffic at its rate and the first pushes landed before counting.
    await new Promise((r) => setTimeout(r, 2_000))
    for (const v of viewers) v.resume()
    const before = await counters()
    const requests0 = sum((v) => v.refreshRequests)
    const shed0 = sum((v) => v.shedRequests)
    const snaps0 = sum((v) => v.snapshots)
    const lat0 = viewers.map((v) => v.latencies.length)
    const t0 = performance.now()
    await new Promise((r) => setTimeout(r, PHASE_S * 1000))
    const seconds = (performance.now() - t0) / 1000
    for (const v of viewers) v.pause()
    const requests = sum((v) => v.refreshRequests) - requests0
    const snaps = sum((v) => v.snapshots) - snaps0
    const ok = traffic ? await traffic.stop() : 0
    const d0 = performance.now()
    await until(() => sum((v) => v.inflight) === 0, "the viewers' requests to be answered")
    const drain = (performance.now() - d0) / 1000
    const after = await counters()
    const latencies = viewers.flatMap((v, i) => v.latencies.slice(lat0[i]))
    const shed = sum((v) => v.shedRequests) - shed0
    phases[name] = {
      label: opts.label,
      traffic: opts.traffic,
      seconds,
      selects: (after.selects - before.selects) / seconds,
      hubRefreshes: (after.refreshes - before.refreshes) / seconds,
      pushes: snaps / seconds,
      reRequests: requests / seconds,
      shed,
      p50: latencies.length ? percentile(latencies, 50) : Number.NaN,
      drain,
    }
    log(
      `${name}: ${fmt(phases[name].selects, 1)} selects/s, ${requests} re-requests, ${snaps} pushes, ${ok} gateway requests, drained in ${fmt(drain, 1)} s`,
    )
  }

  // Rows first, so every page has numbers to show.
  const warm = steadyTraffic(pool, 50)
  await new Promise((r) => setTimeout(r, 4_000))
  await warm.stop()
  await new Promise((r) => setTimeout(r, 2_000))

  // Statements per chart or table request, one request at a time (nothing shared).
  const c0 = await counters()
  let asked = 0
  for (const view of VIEWS) {
    const qs = `range=24h&tz=UTC`
    for (const path of [
      `/api/series?${qs}&split=${view === 'user' ? 'none' : view}`,
      `/api/breakdown?${qs}&by=${view}&sort=cost&order=desc&limit=50&offset=0`,
    ]) {
      const res = await fetch(`${info.url}${path}`, {
        headers: { authorization: `Bearer ${info.viewerKeys[0]}` },
      })
      await res.text()
      if (res.status !== 200) throw new Error(`${path}: ${res.status}`)
      asked++
    }
  }
  const perRequest = ((await counters()).selects - c0.selects) / asked
  log(`${fmt(perRequest, 2)} selects per chart or table request`)

  await phase('background-idle', { traffic: false, label: 'no viewers, no traffic (background)' })
  for (let i = 0; i < SUBSCRIBERS; i++) {
    viewers.push(
      openViewer({
        origin: info.url,
        key: info.viewerKeys[i]!,
        filter: FILTERS[i % FILTERS.length]!,
        view: VIEWS[Math.floor(i / FILTERS.length) % VIEWS.length]!,
      }),
    )
  }
  await Promise.all(viewers.map((v) => v.ready))
  log(
    `${viewers.length} viewers on ${FILTERS.length} filters loaded their pages and got their first snapshot`,
  )
  await phase('idle', { traffic: false, label: '(a) 100 viewers, no traffic' })
  await phase('traffic', { traffic: true, label: '(b) 100 viewers, steady traffic' })
  const failed = sum((v) => v.failedRequests)
  const unanswered = sum((v) => v.networkErrors)
  const lastNetworkError = viewers.findLast((v) => v.lastNetworkError)?.lastNetworkError
  for (const v of viewers) v.close()
  viewers.length = 0
  await phase('background-traffic', { traffic: true, label: 'no viewers, steady traffic (background)' })
  await pool.close()
  if (failed > 0) throw new Error(`${failed} viewer requests failed (not 200, not shed): fix the setup`)
  if (unanswered > 0) {
    throw new Error(
      `${unanswered} viewer requests got no answer (the last: ${lastNetworkError}): fix the setup`,
    )
  }

  // Per hub refresh: the idle phase has no re-requests, so its statements are the hub's.
  const idle = phases.idle!
  const perRefresh =
    idle.hubRefreshes > 0 ? (idle.selects - phases['background-idle']!.selects) / idle.hubRefreshes : 0
  const rowsOut = Object.values(phases).map((ph) => {
    const background = ph.traffic ? phases['background-traffic']! : phases['background-idle']!
    // Every re-request its own query, nothing shared: the most these viewers can ask for.
    const unshared = ph.reRequests * perRequest + ph.hubRefreshes * perRefresh + background.selects
    // The naive client: chart and table re-requested after every push, and a push after
    // every hub refresh even when nothing changed (before the hub compared), nothing shared.
    const naivePushes = Math.max(ph.pushes, (ph.hubRefreshes * SUBSCRIBERS) / FILTERS.length)
    const naive = naivePushes * 2 * perRequest + ph.hubRefreshes * perRefresh + background.selects
    return [
      ph.label,
      ph.traffic ? `${QUERY_RATE} req/s` : 'none',
      fmt(ph.seconds, 1),
      fmt(ph.hubRefreshes, 2),
      fmt(ph.pushes, 1),
      fmt(ph.reRequests, 1),
      ph.shed,
      fmt(ph.selects, 1),
      fmt(unshared, 1),
      fmt(naive, 1),
      naive > 0 ? ratio(ph.selects, naive) : '—',
      fmt(ph.p50, 0),
      fmt(ph.drain, 1),
    ]
  })
  tables.push({
    id: 'live-queries',
    title: 'Live mode: ClickHouse selects per second, 100 viewers of the Usage page on 10 distinct filters',
    command: `${commandFor('live', args)} --live-part=queries`,
    columns: [
      'Phase',
      'Gateway traffic',
      'Seconds',
      'Hub refreshes/s',
      'Pushes/s (all viewers)',
      'Viewer re-requests/s',
      'Of them shed (503)',
      'Selects/s measured',
      'Selects/s if nothing were shared',
      'Baseline: re-request after every push, selects/s',
      'Measured vs baseline',
      'Re-request p50 ms',
      'Backlog drained in s',
    ],
    rows: rowsOut,
    notes: [
      `Selects: the server's tokenmeter_clickhouse_queries_total{kind="select"} from /metrics, from the start of a phase until every request of the phase was answered, per second of the phase. Measured one at a time before the phases: ${fmt(perRequest, 2)} selects per chart or table request; ${fmt(perRefresh, 2)} per live hub refresh (from phase (a), where only the hub queries).`,
      'Selects/s if nothing were shared: re-requests x selects per request + hub refreshes x selects per refresh + the background phase. Baseline, the naive count: the same with a chart and a table request per push and viewer, and a push to every viewer of a topic after each hub refresh even when nothing changed (as before the hub and the page compared numbers). Identical requests share one answer while it runs and, until new usage is written, for USAGE_ANSWER_KEEP_MS after: at most one query per distinct request per data change or keep period, fewer when queries are slow (read it with its re-request p50).',
      "Viewers: 100 leads of one team, each making the Usage page's requests (scripts/bench/lib/usage-page-viewer.ts): page load, a live socket, then chart and table re-requested when the pushed numbers change, at most once a second. Viewers of one filter share a live topic; identical requests of one scope share one answer (api/inflight.ts).",
      `Filters: ${FILTERS.map((f) =>
        Object.entries(f)
          .map(([k, v]) => `${k}=${v}`)
          .join('&'),
      ).join('; ')}; ten viewers each, in the views user, team, project and app.`,
    ],
  })
}

try {
  if (part !== 'queries') await latency()
  if (part !== 'latency') await queries()
} finally {
  await gw.stop(60_000)
  await upstream.stop()
}
emit(tables)
