import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createCore } from '../../services/src/bootstrap.ts'
import { parseEnv } from '../../services/src/core/config/env.ts'
import { encodeRows } from '../../services/src/core/storage/warehouse.ts'
import { createUsageJournal } from '../../services/src/core/usage/usage-journal.ts'
import { createUsageRecorder } from '../../services/src/core/usage/usage-recorder.ts'
import { cpuSeconds, startChild } from './lib/child.ts'
import { demoRows } from './lib/demo-rows.ts'
import { closedLoop, type LoadResult, type Target } from './lib/load.ts'
import { measureParkedBytes, PARKED_BYTES_COLUMNS } from './lib/parked-bytes.ts'
import { commandFor, emit, errorLogger, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, measure, median, percentile, ratio } from './lib/stats.ts'

/**
 * What the write-ahead journal (core/usage-journal.ts) costs, side by side
 * with the in-memory path in the same run:
 * 1. the gateway: two gateway processes on the embedded engine, JOURNAL=on and
 *    JOURNAL=off, same upstream (no latency), JSON and streamed answers;
 *    latency at concurrency 1 and peak throughput at concurrency 64, slices
 *    interleaved round by round so drift in the machine's load hits both;
 * 2. ingest: the product's recorder with and without a journal, rows recorded
 *    as fast as ClickHouse takes them, then the append alone per row.
 */
const args = parseArgs()
const SLICE_S = args.quick ? 2 : 4
const ROUNDS = args.quick ? 3 : 6
const INGEST_ROUNDS = args.quick ? 2 : 4
const INGEST_ROWS = args.quick ? 50_000 : 500_000
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))
const node = process.execPath
const tables: Table[] = []

// 1. Gateway
const body = (stream: boolean) =>
  JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'user', content: 'Summarise the quarterly usage report in three bullet points. '.repeat(5) },
    ],
    max_tokens: 64,
    ...(stream ? { stream: true } : {}),
  })
const upstream = await startChild(node, [here('./upstream.process.ts'), '--latency-ms=0'], {
  marker: 'READY ',
})
// `control` is a second JOURNAL=off gateway, identical to `off`: the p50
// difference between two identical processes (an A/A comparison) is the
// noise floor an on/off difference has to be read against.
const startGateway = (journal: 'on' | 'off') =>
  startChild(
    node,
    [
      here('./gateway.process.ts'),
      `--upstream=${upstream.ready}`,
      ...(journal === 'off' ? ['--journal=off'] : []),
    ],
    { marker: 'READY ', timeoutMs: 120_000 },
  )
const gateways = {
  on: await startGateway('on'),
  off: await startGateway('off'),
  control: await startGateway('off'),
}
type Mode = keyof typeof gateways
const target = (mode: Mode, stream: boolean): Target => {
  const ready = JSON.parse(gateways[mode].ready) as { url: string; key: string }
  return {
    name: `journal ${mode}`,
    origin: ready.url,
    path: '/v1/chat/completions',
    headers: { authorization: `Bearer ${ready.key}` },
    body: body(stream),
  }
}
const merge = (rs: LoadResult[]) => {
  const latencies = rs.flatMap((r) => r.latencies)
  const ok = rs.reduce((n, r) => n + r.ok, 0)
  const seconds = rs.reduce((n, r) => n + r.seconds, 0)
  return { latencies, rps: ok / seconds, errors: rs.reduce((n, r) => n + r.errors, 0) }
}
/**
 * The on-gateway's own measure of the journal's hold on each answer's end
 * (tokenmeter_journal_answer_hold_seconds): cumulative bucket counts and sum,
 * read before and after its slices. Not subject to the process-to-process
 * noise of comparing two gateways' latencies.
 */
type Hold = { buckets: Map<number, number>; sum: number; count: number }
async function readHold(): Promise<Hold> {
  const ready = JSON.parse(gateways.on.ready) as { url: string; adminToken: string }
  const text = await (
    await fetch(`${ready.url}/metrics`, { headers: { authorization: `Bearer ${ready.adminToken}` } })
  ).text()
  const name = 'tokenmeter_journal_answer_hold_seconds'
  const buckets = new Map<number, number>()
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, 'gm')))
    buckets.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]))
  const value = (suffix: string) =>
    Number(new RegExp(`^${name}_${suffix} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  return { buckets, sum: value('sum'), count: value('count') }
}
const holdDelta = (a: Hold, b: Hold): Hold => ({
  buckets: new Map([...b.buckets].map(([le, n]) => [le, n - (a.buckets.get(le) ?? 0)])),
  sum: b.sum - a.sum,
  count: b.count - a.count,
})
const addHold = (a: Hold | undefined, b: Hold): Hold =>
  a
    ? {
        buckets: new Map([...b.buckets].map(([le, n]) => [le, n + (a.buckets.get(le) ?? 0)])),
        sum: a.sum + b.sum,
        count: a.count + b.count,
      }
    : b
/** The upper bound of the bucket holding the median, in ms ("at most"). */
function holdP50Ms(h: Hold): number {
  for (const [le, n] of [...h.buckets].sort((x, y) => x[0] - y[0])) if (n >= h.count / 2) return le * 1000
  return Number.NaN
}
const holdMeanMs = (h: Hold) => (h.sum / h.count) * 1000

/** Median over rounds of a per-round difference of p50s: each round's slices ran back to back. */
const pairedP50 = (a: LoadResult[], b: LoadResult[], abs = false) =>
  median(
    a.map((r, i) => {
      const d = percentile(r.latencies, 50) - percentile(b[i]!.latencies, 50)
      return abs ? Math.abs(d) : d
    }),
  )
const gwRows: (string | number)[][] = []
const summary: (string | number)[][] = []
for (const stream of [false, true]) {
  const label = stream ? 'streamed' : 'JSON'
  log(`gateway, ${label}: journal on vs off (and the A/A control)`)
  const c1: Record<Mode, LoadResult[]> = { on: [], off: [], control: [] }
  const peak: Record<string, LoadResult[]> = { on: [], off: [] }
  // CPU seconds of each gateway process during its peak slices: a cost that does not depend on the machine's load.
  const cpu = { on: 0, off: 0 }
  let holdC1: Hold | undefined
  let holdPeak: Hold | undefined
  for (const mode of ['on', 'off', 'control'] as const) await closedLoop(target(mode, stream), 8, 1)
  for (let round = 0; round < ROUNDS; round++) {
    // Each mode takes each place in the order in turn.
    const modes: Mode[] = ['on', 'off', 'control']
    const order = [...modes.slice(round % 3), ...modes.slice(0, round % 3)]
    for (const mode of order) {
      const hold = mode === 'on' ? await readHold() : undefined
      c1[mode].push(await closedLoop(target(mode, stream), 1, SLICE_S))
      if (hold) holdC1 = addHold(holdC1, holdDelta(hold, await readHold()))
    }
    for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      const hold = mode === 'on' ? await readHold() : undefined
      const before = cpuSeconds(gateways[mode].pid)
      peak[mode]!.push(await closedLoop(target(mode, stream), 64, SLICE_S))
      cpu[mode] += cpuSeconds(gateways[mode].pid) - before
      if (hold) holdPeak = addHold(holdPeak, holdDelta(hold, await readHold()))
    }
  }
  const m = { on: merge(c1.on), off: merge(c1.off), control: merge(c1.control) }
  const p = { on: merge(peak.on!), off: merge(peak.off!) }
  for (const mode of ['on', 'off'] as const) {
    gwRows.push([
      label,
      mode,
      fmt(percentile(m[mode].latencies, 50), 3),
      fmt(percentile(m[mode].latencies, 99), 3),
      fmt(p[mode].rps, 0),
      fmt((cpu[mode] * 1e6) / p[mode].latencies.length, 0),
      m[mode].errors + p[mode].errors,
    ])
  }
  gwRows.push([
    label,
    'off (A/A control)',
    fmt(percentile(m.control.latencies, 50), 3),
    fmt(percentile(m.control.latencies, 99), 3),
    '',
    '',
    m.control.errors,
  ])
  summary.push([
    label,
    fmt(pairedP50(c1.on, c1.off), 3),
    fmt(pairedP50(c1.control, c1.off, true), 3),
    fmt(percentile(m.on.latencies, 99) - percentile(m.off.latencies, 99), 3),
    ratio(p.on.rps, p.off.rps),
    fmt((cpu.on * 1e6) / p.on.latencies.length - (cpu.off * 1e6) / p.off.latencies.length, 0),
    `${fmt(holdMeanMs(holdC1!), 3)} / ≤ ${fmt(holdP50Ms(holdC1!), 3)}`,
    `${fmt(holdMeanMs(holdPeak!), 3)} / ≤ ${fmt(holdP50Ms(holdPeak!), 3)}`,
  ])
}
for (const g of [gateways.on, gateways.off, gateways.control, upstream]) await g.stop()
tables.push({
  id: 'journal-gateway',
  title: 'Journal cost in the gateway (journal on vs JOURNAL=off, same run)',
  command: commandFor('journal', args),
  columns: [
    'answer',
    'journal',
    'p50 ms (concurrency 1)',
    'p99 ms (concurrency 1)',
    'peak req/s (concurrency 64)',
    'gateway CPU µs/request at peak',
    'errors',
  ],
  rows: gwRows,
  notes: [
    `Slices of ${SLICE_S} s, ${ROUNDS} rounds, the modes interleaved (each takes each place in the order in turn); upstream answers at once (so the gateway's own cost is all there is). The A/A control is a second JOURNAL=off process: its distance from \`off\` is the noise between two identical processes.`,
  ],
})
tables.push({
  id: 'journal-gateway-added',
  title: 'Added by the journal (on minus off)',
  command: commandFor('journal', args),
  columns: [
    'answer',
    'added p50 ms (median of rounds)',
    'A/A noise p50 ms (|control - off|, median of rounds)',
    'added p99 ms',
    'peak throughput on/off',
    'added CPU µs/request',
    'hold in the gateway, mean / p50 ms (concurrency 1)',
    'hold in the gateway, mean / p50 ms (concurrency 64)',
  ],
  rows: summary,
  notes: [
    'Added p50: on minus off, per round (slices back to back), median over the rounds. Target: under 0.1 ms added p50, throughput within 10% (ratio >= 0.90x).',
    "Hold: the journal gateway's own histogram (tokenmeter_journal_answer_hold_seconds), how long each answer's end waited for its row's journal write, from the append to the write at the end of the turn; p50 is the upper bound of its bucket.",
  ],
})

// 2. Ingest (the gateway tables are printed first, in case this part fails on a loaded machine)
log(JSON.stringify(tables.map((t) => ({ title: t.title, rows: t.rows }))))
const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-bench-journal-'))
// A generous insert timeout, alike for both modes: on a loaded machine a 50,000-row insert can pass 10 s,
// and a timed-out insert spills its batch, which would measure the spool instead of ClickHouse.
const env = parseEnv({
  DATA_DIR: dataDir,
  DEMO: 'false',
  LOG_LEVEL: 'silent',
  ROLES: 'api',
  JOURNAL: 'off',
  CLICKHOUSE_INSERT_TIMEOUT_MS: '120000',
})
const logger = errorLogger()
const spillCauses = new Map<string, number>()
const core = await createCore(env, {
  logger,
  spill: {
    spill: async (batch, cause) => {
      const k = String((cause as Error)?.message ?? cause).slice(0, 160)
      spillCauses.set(k, (spillCauses.get(k) ?? 0) + 1)
      await core.outage.sink.spill(batch, cause)
    },
  },
})
// At 10,000 rows a second, as a busy gateway records them.
const rowsOf = (n: number, seed: number) => demoRows(n, seed, Math.ceil((n / 10_000) * 1000))
const ingestRows: (string | number)[][] = []
const rates: Record<string, number[]> = { on: [], off: [] }
for (let round = 0; round < INGEST_ROUNDS; round++) {
  for (const mode of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    const rows = rowsOf(INGEST_ROWS, round * 2 + (mode === 'on' ? 1 : 0))
    const journal =
      mode === 'on'
        ? createUsageJournal({
            dir: join(dataDir, `journal-${round}`),
            maxBytes: 4 * 2 ** 30,
            fsyncMs: 200,
            logger,
          })
        : undefined
    const recorder = createUsageRecorder({
      warehouse: core.warehouse,
      spill: { spill: (b, c) => core.outage.sink.spill(b, c).finally(() => spillCauses.set(String(c), 1)) },
      insertBatch: core.outage.insertBatch,
      maxRows: env.RECORDER_MAX_ROWS,
      flushMs: env.RECORDER_FLUSH_MS,
      insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
      logger,
      journal,
    })
    log(`ingest, journal ${mode}, round ${round + 1}: ${INGEST_ROWS} rows`)
    const r = await measure(async () => {
      for (let i = 0; i < rows.length; i++) {
        recorder.record(rows[i]!)
        if (i % 1_000 !== 999) continue
        // As in the ingest benchmark: inserts progress between bursts, the source waits for ClickHouse.
        await yieldToLoop()
        while (recorder.stats().pendingRows > 2 * env.RECORDER_MAX_ROWS)
          await new Promise((r) => setTimeout(r, 2))
      }
      await recorder.flush()
    })
    const s = recorder.stats()
    if (s.spilled > 0 || s.pendingRows > 0)
      throw new Error(`recorder spilled ${s.spilled}, pending ${s.pendingRows}`)
    await recorder.close()
    const left = journal?.status().segments ?? 0
    await journal?.close()
    if (left > 0) throw new Error(`${left} journal segments not acknowledged after the flush`)
    rates[mode]!.push(INGEST_ROWS / (r.wallMs / 1000))
    ingestRows.push([
      `journal ${mode}`,
      round + 1,
      INGEST_ROWS,
      fmt(r.wallMs / 1000, 2),
      fmt(INGEST_ROWS / (r.wallMs / 1000), 0),
      fmt((r.cpuMs * 1000) / INGEST_ROWS, 2),
    ])
  }
}
const best = (xs: number[]) => Math.max(...xs)
// The append alone: what record() adds per row. Rows appended in one turn of
// the event loop share one record and one write(); a gateway at concurrency 1
// writes one row per turn, ingest (or a busy gateway) many. With the journal
// on, the insert sends the journal's bytes: the serialisation it saves is
// measured beside it (encodeRows of the same rows, as the insert does with the
// journal off).
const appendRows = rowsOf(50_000, 99)
const BATCH = 5_000
const appendCases: (string | number)[][] = []
const appendCpu: Record<string, number> = {}
for (const perTurn of [1, 1_000]) {
  const alone = createUsageJournal({
    dir: join(dataDir, `journal-append-${perTurn}`),
    maxBytes: 4 * 2 ** 30,
    fsyncMs: 200,
    logger,
  })
  const turn = await measure(async () => {
    for (let i = 0; i < appendRows.length; i++) if (i % perTurn === perTurn - 1) await yieldToLoop()
  })
  const a = await measure(async () => {
    for (let i = 0; i < appendRows.length; i++) {
      alone.append(appendRows[i]!)
      if (i % perTurn === perTurn - 1) await (alone.durable() ?? yieldToLoop())
      if (i % BATCH === BATCH - 1) alone.ack(alone.cut()!.token)
    }
  })
  await alone.close()
  const saved = await measure(async () => {
    for (let i = 0; i < appendRows.length; i += BATCH)
      Buffer.from(encodeRows(appendRows.slice(i, i + BATCH)).body)
  })
  const perRow = (ms: number) => (ms * 1000) / appendRows.length
  const cpu = perRow(a.cpuMs - turn.cpuMs)
  appendCpu[perTurn] = cpu - perRow(saved.cpuMs)
  appendCases.push([
    perTurn === 1 ? '1 row per turn (an answer at concurrency 1)' : '1,000 rows per turn (ingest)',
    fmt(perRow(a.wallMs - turn.wallMs), 2),
    fmt(cpu, 2),
    fmt(perRow(saved.cpuMs), 2),
    fmt(appendCpu[perTurn]!, 2),
  ])
}
tables.push({
  id: 'journal-ingest',
  title: 'Ingest through the recorder, journal on vs off (embedded engine, every rollup attached)',
  command: commandFor('journal', args),
  columns: ['recorder', 'round', 'rows', 'seconds', 'rows/s', 'CPU µs/row (whole process)'],
  rows: ingestRows,
  notes: [
    `Best round: on ${fmt(best(rates.on!), 0)} rows/s, off ${fmt(best(rates.off!), 0)} rows/s (${ratio(best(rates.on!), best(rates.off!))}).`,
  ],
})
tables.push({
  id: 'journal-append',
  title: 'The append alone, per row (JSON once, crc32 and write() per turn, a cut every 5,000 rows)',
  command: commandFor('journal', args),
  columns: [
    'rows per event-loop turn',
    'µs/row wall',
    'µs/row CPU',
    'insert serialisation saved, µs/row CPU',
    'net added CPU µs/row',
  ],
  rows: appendCases,
  notes: [
    `${appendRows.length.toLocaleString('en-US')} rows; the cost of the turns themselves is subtracted. The insert sends the journal's JSONCompactEachRow lines as they are, so with the journal on a row is serialised once (journal off: once, by the insert).`,
  ],
})
tables.push({
  id: 'journal-summary',
  title: 'Journal: the targets (under 0.1 ms added p50, throughput within 10%)',
  command: commandFor('journal', args),
  columns: ['measure', 'JSON', 'streamed'],
  rows: [
    ['added p50 ms (concurrency 1)', summary[0]![1]!, summary[1]![1]!],
    ['A/A noise p50 ms (two identical JOURNAL=off processes)', summary[0]![2]!, summary[1]![2]!],
    ['hold of the answer in the gateway, mean / p50 ms (concurrency 1)', summary[0]![6]!, summary[1]![6]!],
    ['added p99 ms (concurrency 1)', summary[0]![3]!, summary[1]![3]!],
    ['peak throughput on/off (concurrency 64)', summary[0]![4]!, summary[1]![4]!],
    ['ingest rows/s on/off (best rounds)', ratio(best(rates.on!), best(rates.off!)), ''],
    [
      'append, net CPU µs/row (1 row per turn / 1,000 per turn)',
      `${fmt(appendCpu[1]!, 2)} / ${fmt(appendCpu[1_000]!, 2)}`,
      '',
    ],
  ],
  notes: ['Ratios >= 0.90x meet the throughput target; added p50 < 0.100 ms meets the latency target.'],
})
// 3. What an outage costs on disk: parked segments, as written and compressed while they wait.
log('parked segments: bytes per row')
tables.push({
  id: 'journal-parked-bytes',
  title: 'Parked segments during an outage: bytes per row, as written and compressed',
  command: commandFor('journal', args),
  columns: PARKED_BYTES_COLUMNS,
  rows: await measureParkedBytes(),
  notes: [
    'Demo-catalogue rows, 20 per journal write; one batch = one second of traffic (RECORDER_FLUSH_MS=1000). The last column: how long the default JOURNAL_MAX_BYTES (1 GiB) holds an outage at that rate.',
  ],
})
await core.close()
rmSync(dataDir, { recursive: true, force: true })
emit(tables)
process.exit(0)
