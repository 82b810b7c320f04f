/**
 * Ops CLI for outages: a thin client of the running product's admin API
 * (/api/admin/ops/*), so it works the same against the embedded default and
 * a server-mode deployment, and never opens the data directory behind a
 * running process's back (libchdb binds it to one process).
 *
 *   npm run ops -- status [--watch]     what waits in Redis / on disk, replay progress, quarantine
 *   npm run ops -- batches [--limit N]  spilled batches, oldest first
 *   npm run ops -- inspect <batchId>    one spilled batch with its rows
 *   npm run ops -- replay [--watch]     replay now (skips backoff) and follow progress
 *   npm run ops -- quarantine           quarantined batches and damaged segments
 *   npm run ops -- retry <id>           retry a quarantined batch
 *   npm run ops -- export <id> [--raw]  print a quarantine entry as JSON (or the raw segment bytes)
 *
 * TOKENMETER_URL (default http://localhost:8787) and ADMIN_TOKEN select the instance.
 */
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    watch: { type: 'boolean', default: false },
    limit: { type: 'string', default: '100' },
    raw: { type: 'boolean', default: false },
    url: { type: 'string' },
  },
})
// The CLI is not a service process: it reads only its own two settings.
const base = (values.url ?? process.env.TOKENMETER_URL ?? 'http://localhost:8787').replace(/\/$/, '')
const token = process.env.ADMIN_TOKEN
const [command = 'status', arg] = positionals

async function call(path: string, method = 'GET'): Promise<Response> {
  if (!token) fail('Set ADMIN_TOKEN to the admin token of the running instance.')
  let res: Response
  try {
    res = await fetch(`${base}/api/admin/ops${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
    })
  } catch (err) {
    fail(`Cannot reach ${base} (${(err as Error).message}). Is Tokenmeter running? Set TOKENMETER_URL.`)
  }
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } }
    fail(`${res.status}: ${body.error?.message ?? res.statusText}`)
  }
  return res
}
const json = async <T>(path: string, method = 'GET') => (await call(path, method)).json() as Promise<T>

function fail(message: string): never {
  console.error(message)
  process.exit(1)
}

const bytes = (n: number) =>
  n >= 1 << 30
    ? `${(n / (1 << 30)).toFixed(1)} GiB`
    : n >= 1 << 20
      ? `${(n / (1 << 20)).toFixed(1)} MiB`
      : n >= 1024
        ? `${(n / 1024).toFixed(1)} KiB`
        : `${n} B`
const age = (s: number | undefined) =>
  s === undefined ? '-' : s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`

interface Status {
  mode: string
  journal?: {
    bytes: number
    maxBytes: number
    segments: number
    compressedSegments: number
    oldestAgeSeconds?: number
    rejectedRows: number
    fsyncMs: number
    lastError?: string
    recovery: {
      state: string
      segmentsFound: number
      segmentsDone: number
      rowsDone: number
      inserts: number
      tornTails: number
      damagedRecords: number
      compaction: { segments: number; bytesBefore: number; bytesAfter: number }
      lastError?: string
    }
  }
  clickhouse: { reachable: boolean }
  redis?: {
    connected: boolean
    jobs: { waiting: number; active: number; delayed: number; failed: number }
    bytes: number
    maxBytes: number
    overBudgetSpills: number
    oldestAgeSeconds?: number
    durabilityWarnings: string[]
  }
  disk: {
    batches: number
    segments: number
    bytes: number
    maxBytes: number
    full: boolean
    rejected: number
    oldestAgeSeconds?: number
    lastError?: string
  }
  replay: {
    state: string
    runsHere: boolean
    batches: number
    rows: number
    rowsPerSecond: number
    lastError?: string
    backoffMs: number
  }
  quarantine: { entries: number; rows: number }
  rowsDropped: number
}

function printStatus(s: Status, startRemaining?: number) {
  const lines = [
    `ClickHouse: ${s.clickhouse.reachable ? 'answering' : 'NOT ANSWERING'}    spill mode: ${s.mode}`,
  ]
  const j = s.journal
  if (j) {
    const r = j.recovery
    lines.push(
      `Journal: ${bytes(j.bytes)} of ${bytes(j.maxBytes)} in ${j.segments} segments, oldest unacknowledged ${age(j.oldestAgeSeconds)}, fsync every ${j.fsyncMs || 'answer'}${j.fsyncMs ? ' ms' : ''}` +
        `${j.rejectedRows ? `, ${j.rejectedRows} rows REFUSED (${j.lastError}; kept in memory)` : ''}`,
      `         recovery at start: ${r.state}, ${r.segmentsDone}/${r.segmentsFound} segments, ${r.rowsDone} rows in ${r.inserts} inserts` +
        `${r.tornTails || r.damagedRecords ? `; ${r.tornTails} torn tails cut off, ${r.damagedRecords} damaged records skipped (see quarantine)` : ''}` +
        `${r.state === 'waiting' ? ` (waiting: ${r.lastError})` : ''}`,
    )
    const c = r.compaction
    if (j.compressedSegments > 0 || c.segments > 0)
      lines.push(
        `         ${j.compressedSegments} segments waiting compressed; compressed so far: ${c.segments} segments, ${bytes(c.bytesBefore)} -> ${bytes(c.bytesAfter)}` +
          `${c.bytesAfter > 0 ? ` (${(c.bytesBefore / c.bytesAfter).toFixed(1)}x)` : ''}`,
      )
  } else lines.push('Journal: off (JOURNAL=off): a killed process loses its unflushed rows')
  let remaining = s.disk.batches
  if (s.redis) {
    const r = s.redis
    const waiting = r.jobs.waiting + r.jobs.active + r.jobs.delayed
    remaining += waiting
    lines.push(
      `Redis:  ${r.connected ? '' : 'DOWN  '}${waiting} batches, ${bytes(r.bytes)} of ${bytes(r.maxBytes)}, oldest ${age(r.oldestAgeSeconds)}` +
        `${r.jobs.failed ? `, ${r.jobs.failed} FAILED` : ''}${r.overBudgetSpills ? `, ${r.overBudgetSpills} spills over budget -> disk` : ''}`,
    )
    for (const w of r.durabilityWarnings) lines.push(`        WARNING: ${w}`)
  }
  const d = s.disk
  lines.push(
    `Disk:   ${d.batches} batches in ${d.segments} segments, ${bytes(d.bytes)} of ${bytes(d.maxBytes)}, oldest ${age(d.oldestAgeSeconds)}` +
      `${d.full ? `, FULL (${d.rejected} refused; kept in memory)` : ''}`,
  )
  const p = s.replay
  lines.push(
    `Replay: ${p.runsHere ? p.state : 'runs in the worker process'}; ${p.batches} batches / ${p.rows} rows replayed, ${p.rowsPerSecond} rows/s` +
      `${p.state === 'backing-off' ? ` (retry in ≤${p.backoffMs} ms: ${p.lastError})` : ''}`,
  )
  if (startRemaining !== undefined && startRemaining > 0) {
    const done = Math.max(0, startRemaining - remaining)
    const width = 30
    const filled = Math.round((done / startRemaining) * width)
    lines.push(
      `        [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${startRemaining} batches, ${remaining} left`,
    )
  }
  lines.push(
    `Quarantine: ${s.quarantine.entries} entries, ${s.quarantine.rows} rows    rows dropped: ${s.rowsDropped}`,
  )
  console.log(lines.join('\n'))
  return remaining
}

async function watch(first: Status) {
  const start = printStatus(first, undefined)
  if (start === 0) return
  for (;;) {
    await new Promise((r) => setTimeout(r, 1_000))
    const s = await json<Status>('/status')
    console.log('')
    if (printStatus(s, start) === 0) {
      console.log('Replay complete.')
      return
    }
  }
}

switch (command) {
  case 'status': {
    const s = await json<Status>('/status')
    if (values.watch) await watch(s)
    else printStatus(s)
    break
  }
  case 'batches': {
    const { batches } = await json<{
      batches: {
        batchId: string
        store: string
        createdAt: number
        rows: number
        bytes: number
        location: string
      }[]
    }>(`/batches?limit=${encodeURIComponent(values.limit)}`)
    if (batches.length === 0) console.log('No spilled batches waiting.')
    for (const b of batches) {
      console.log(
        `${new Date(b.createdAt).toISOString()}  ${b.store.padEnd(5)}  ${b.batchId}  ${String(b.rows).padStart(5)} rows  ${bytes(b.bytes).padStart(9)}  ${b.location}`,
      )
    }
    break
  }
  case 'inspect':
    if (!arg) fail('Usage: npm run ops -- inspect <batchId>')
    console.log(JSON.stringify(await json(`/batches/${encodeURIComponent(arg)}`), null, 2))
    break
  case 'replay': {
    const s = await json<Status>('/replay', 'POST')
    console.log('Replay requested (backoff skipped).')
    await watch(s)
    break
  }
  case 'quarantine': {
    const { entries } = await json<{
      entries: { id: string; kind: string; rowCount: number; reason: string; quarantinedAt: string }[]
    }>('/quarantine')
    if (entries.length === 0) console.log('Quarantine is empty.')
    for (const e of entries)
      console.log(`${e.quarantinedAt}  ${e.kind.padEnd(7)}  ${e.id}  ${e.rowCount} rows  ${e.reason}`)
    break
  }
  case 'retry':
    if (!arg) fail('Usage: npm run ops -- retry <id>')
    console.log(JSON.stringify(await json(`/quarantine/${encodeURIComponent(arg)}/retry`, 'POST'), null, 2))
    break
  case 'export': {
    if (!arg) fail('Usage: npm run ops -- export <id> [--raw] > file')
    const res = await call(`/quarantine/${encodeURIComponent(arg)}${values.raw ? '?raw=1' : ''}`)
    if (values.raw) process.stdout.write(Buffer.from(await res.arrayBuffer()))
    else console.log(JSON.stringify(await res.json(), null, 2))
    break
  }
  default:
    fail(
      `Unknown command ${command}. Commands: status, batches, inspect ID, replay, quarantine, retry ID, export ID.`,
    )
}
