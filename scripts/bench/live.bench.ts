import { fileURLToPath } from 'node:url'
import { WebSocket } from 'undici'
import { startChild } from './lib/child.ts'
import { commandFor, emit, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, percentile } from './lib/stats.ts'

/**
 * Live latency: from a request's completion at the gateway (its client has
 * read the last byte) to the first WebSocket message, on each of 100
 * subscribers of GET /api/live, whose totals include it. Our gateway and API
 * run in one process on the embedded engine, as the default deployment does;
 * the subscribers and the traffic come from this process.
 */
const args = parseArgs()
const SUBSCRIBERS = 100
const RATE = 50
const SECONDS = args.quick ? 6 : 30
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))

const upstream = await startChild(process.execPath, [here('./upstream.process.ts'), '--latency-ms=25'], {
  marker: 'READY ',
})
const gw = await startChild(
  process.execPath,
  [here('./gateway.process.ts'), `--upstream=${upstream.ready}`, '--api'],
  {
    marker: 'READY ',
    timeoutMs: 120_000,
  },
)
const info = JSON.parse(gw.ready) as { url: string; key: string; adminToken: string }
const rows: (string | number)[][] = []

try {
  // Each subscriber keeps (arrival time, requests in its totals) for every message.
  const seen: { at: number; requests: number }[][] = []
  const sockets: WebSocket[] = []
  await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const log: { at: number; requests: number }[] = []
      seen.push(log)
      const ws = new WebSocket(`${info.url.replace('http', 'ws')}/api/live?range=24h`, {
        headers: { authorization: `Bearer ${info.adminToken}` },
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
  const { Pool } = await import('undici')
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
} finally {
  await gw.stop(60_000)
  await upstream.stop()
}

const table: Table = {
  id: 'live',
  title: 'Live latency: request completed at the gateway -> visible on a subscribed WebSocket (ms)',
  command: commandFor('live', args),
  columns: ['Subscribers', 'Traffic', 'Requests', 'p50', 'p95', 'p99', 'max', 'Never seen'],
  rows,
  notes: [
    'Latency per (request, subscriber): first message whose kpis.requests counts the k-th completion, minus the time the client read the k-th answer to its end.',
    'All subscribers watch the same filter (one shared topic); the hub coalesces pushes to at most one every 250 ms.',
  ],
}
emit([table])
