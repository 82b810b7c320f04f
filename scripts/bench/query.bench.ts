import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../services/src/app.ts'
import { createCore } from '../../services/src/bootstrap.ts'
import { parseEnv } from '../../services/src/core/config/env.ts'
import { toClickHouseTime } from '../../services/src/core/usage/usage-row.ts'
import { createCatalogue } from '../../services/src/demo/usage-catalogue.ts'
import { generateUsageBatches } from '../../services/src/demo/usage-generator.ts'
import { commandFor, emit, errorLogger, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, measure, percentile, ratio } from './lib/stats.ts'

/**
 * The dashboard's endpoints (kpis, series, breakdown) over N synthetic rows
 * (skewed keys and users, daily cycles, tags, several models) spread over the
 * last 30 days, 30-day range, with and without filters, timed through
 * app.inject on the real API (auth, zod parsing, rollup choice, JSON).
 * Baseline in the same run: the KPI totals computed from the raw table.
 * Sizes: --quick 1M rows; full 10M, then 100M (--rows=N runs one size).
 */
const args = parseArgs()
const rowsArg = process.argv.find((a) => a.startsWith('--rows='))?.slice(7)
const SIZES = rowsArg ? [Number(rowsArg)] : args.quick ? [1_000_000] : [10_000_000, 100_000_000]
const RUNS = args.quick ? 15 : 40
const INSERT_BATCH = 250_000
const ADMIN_TOKEN = 'bench-admin-token-0123456789'

const rows: (string | number)[][] = []
const loads: string[] = []
const profile: (string | number)[][] = []

for (const size of SIZES) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-bench-query-'))
  const env = parseEnv({ DATA_DIR: dataDir, DEMO: 'false', LOG_LEVEL: 'silent', ROLES: 'api', ADMIN_TOKEN })
  const core = await createCore(env, {
    logger: errorLogger(),
  })
  const app = await buildApp(core, { roles: ['api'] })
  await app.ready()
  const catalogue = createCatalogue({ seed: 7, prefix: 'bench', teams: 12, usersPerTeam: 20 })
  for (const t of catalogue.teams) await core.store.upsertTeam(t)
  for (const u of catalogue.users) await core.store.upsertUser(u)

  const to = Date.now()
  const from = to - 30 * 86_400_000
  log(`loading ${size.toLocaleString('en-US')} rows`)
  const load = await measure(async () => {
    for (const b of generateUsageBatches({
      catalogue,
      seed: 11,
      from,
      to,
      rows: size,
      batchSize: INSERT_BATCH,
    })) {
      await core.warehouse.insertRows('requests', b.rows, { dedupToken: `q${b.index}` })
      if (b.index % 8 === 7) log(`  ${((b.index + 1) * INSERT_BATCH).toLocaleString('en-US')} rows`)
    }
  })
  // Timed queries should not race the merges of the load itself (30-day-old data is long merged).
  const settle = await measure(async () => {
    for (let i = 0; i < 300; i++) {
      const [m] = await core.warehouse.query<{ n: string }>('SELECT count() AS n FROM system.merges')
      if (Number(m?.n) === 0) break
      await new Promise((r) => setTimeout(r, 1_000))
    }
  })
  const [parts] = await core.warehouse.query<{
    raw: string
    r5: string
    r1h: string
    r1d: string
    lat: string
  }>(
    `SELECT
       (SELECT count() FROM requests) AS raw,
       (SELECT count() FROM usage_5m) AS r5,
       (SELECT count() FROM usage_1h) AS r1h,
       (SELECT count() FROM usage_1d) AS r1d,
       (SELECT count() FROM latency_1d) AS lat`,
  )
  loads.push(
    `${size.toLocaleString('en-US')} rows loaded in ${fmt(load.wallMs / 1000, 0)} s (${fmt(size / (load.wallMs / 1000), 0)} rows/s); ` +
      `merges settled ${fmt(settle.wallMs / 1000, 0)} s later; rollup rows: 5m ${Number(parts?.r5).toLocaleString('en-US')}, 1h ${Number(parts?.r1h).toLocaleString('en-US')}, 1d ${Number(parts?.r1d).toLocaleString('en-US')}, latency_1d ${Number(parts?.lat).toLocaleString('en-US')}.`,
  )

  log(loads.at(-1)!)
  const team = catalogue.teams[0]!.teamId
  const model = catalogue.models[0]!.facade.model
  const tag = catalogue.projects[0]!.tagSets[0]![0]!
  const filters: [string, string][] = [
    ['none', ''],
    [`team=${team}`, `&teams=${encodeURIComponent(team)}`],
    [
      `team + model + tag`,
      `&teams=${encodeURIComponent(team)}&models=${encodeURIComponent(model)}&tags=${encodeURIComponent(tag)}`,
    ],
  ]
  const endpoints: [string, string][] = [
    ['GET /api/kpis', '/api/kpis?range=30d'],
    ['GET /api/series', '/api/series?range=30d'],
    ['GET /api/series split=model', '/api/series?range=30d&split=model'],
    ['GET /api/breakdown by=user', '/api/breakdown?range=30d&by=user'],
    ['GET /api/breakdown by=tag', '/api/breakdown?range=30d&by=tag'],
  ]
  const time = async (url: string) => {
    const samples: number[] = []
    let source = ''
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now()
      const res = await app.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
      const ms = performance.now() - t0
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body.slice(0, 300)}`)
      source = (res.json() as { source?: string }).source ?? ''
      if (i >= 2) samples.push(ms)
    }
    return { samples, source }
  }
  // Baseline: the KPI totals straight from the raw table, no rollup.
  const rawSamples: number[] = []
  for (let i = 0; i < RUNS + 2; i++) {
    const t0 = performance.now()
    await core.warehouse.query(
      `SELECT count() AS requests, sum(input_tokens), sum(output_tokens), toString(sum(cost_usd)), uniqExact(user_id)
       FROM requests WHERE started_at >= {from:DateTime64(3)} AND started_at < {to:DateTime64(3)}`,
      { from: toClickHouseTime(from), to: toClickHouseTime(to) },
    )
    if (i >= 2) rawSamples.push(performance.now() - t0)
  }
  const rawP95 = percentile(rawSamples, 95)
  rows.push([
    size.toLocaleString('en-US'),
    'baseline: KPI totals from the raw table',
    'none',
    'requests',
    fmt(percentile(rawSamples, 50), 1),
    fmt(rawP95, 1),
    '1.00x',
  ])
  for (const [name, path] of endpoints) {
    for (const [fname, q] of filters) {
      const { samples, source } = await time(path + q)
      const p95 = percentile(samples, 95)
      rows.push([
        size.toLocaleString('en-US'),
        name,
        fname,
        source,
        fmt(percentile(samples, 50), 1),
        fmt(p95, 1),
        ratio(p95, rawP95),
      ])
      log(`  ${name} [${fname}] p95 ${fmt(p95, 1)} ms (${source})`)
    }
  }
  // Where the slow lines go: the same aggregates with one part left out, on the same data.
  const range = 'bucket >= {from:DateTime} AND bucket < {to:DateTime}'
  const sums = 'sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), toString(sum(cost_usd))'
  const variants: [string, string][] = [
    [
      'KPI over usage_1d with separate p50 and p95 t-digest merges (the API before)',
      `SELECT ${sums}, uniqExact(user_id), quantileTDigestMerge(0.5)(latency), quantileTDigestMerge(0.95)(latency) FROM usage_1d WHERE ${range}`,
    ],
    [
      'KPI with both quantiles from one merge (quantilesTDigestMerge)',
      `SELECT ${sums}, uniqExact(user_id), quantilesTDigestMerge(0.5, 0.95)(latency) FROM usage_1d WHERE ${range}`,
    ],
    ['KPI without latency percentiles', `SELECT ${sums}, uniqExact(user_id) FROM usage_1d WHERE ${range}`],
    [
      'KPI with both quantiles from one merge of latency_1d (the API now, no filter)',
      `SELECT ${sums}, uniqExact(user_id), (SELECT quantilesTDigestMerge(0.5, 0.95)(latency) FROM latency_1d WHERE ${range}) FROM usage_1d WHERE ${range}`,
    ],
    [
      'Per-tag totals, ARRAY JOIN every rollup row (the API before)',
      `SELECT tag, ${sums}, uniqExact(user_id), arraySort(groupUniqArray(100)(model)) FROM usage_1d LEFT ARRAY JOIN tags AS tag WHERE ${range} GROUP BY tag`,
    ],
    [
      'Per-tag totals, grouped by tag set first, ARRAY JOIN after (the API now)',
      `SELECT tag, sum(r), uniqExactMerge(u), arraySort(groupUniqArrayMerge(100)(m)) FROM (SELECT tags, sum(requests) AS r, uniqExactState(user_id) AS u, groupUniqArrayState(100)(model) AS m FROM usage_1d WHERE ${range} GROUP BY tags) LEFT ARRAY JOIN tags AS tag GROUP BY tag`,
    ],
  ]
  const bounds = { from: toClickHouseTime(from).slice(0, 19), to: toClickHouseTime(to + 1_000).slice(0, 19) }
  for (const [label, sql] of variants) {
    const samples: number[] = []
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now()
      await core.warehouse.query(sql, bounds)
      if (i >= 2) samples.push(performance.now() - t0)
    }
    profile.push([
      size.toLocaleString('en-US'),
      label,
      fmt(percentile(samples, 50), 1),
      fmt(percentile(samples, 95), 1),
    ])
  }
  await app.close()
  await core.close()
  rmSync(dataDir, { recursive: true, force: true })
}

const table: Table = {
  id: 'queries',
  title: 'Dashboard queries over a 30-day range (embedded engine), latency in ms',
  command: commandFor('queries', args),
  columns: ['Rows', 'Endpoint', 'Filter', 'Source table', 'p50', 'p95', 'p95 vs raw-table baseline'],
  rows,
  notes: [
    `${RUNS} timed runs per line after 2 warm-up runs, one at a time, through app.inject (auth, parsing, query, JSON) with the admin token.`,
    ...loads,
    'Baseline: count, token and cost sums and distinct users over the same 30 days straight from `requests` (what the KPI endpoint would cost without rollups).',
  ],
}
emit([
  table,
  {
    id: 'queries-profile',
    title: 'Where the slow query lines spend their time (SQL only, usage_1d, 30 days, ms)',
    command: commandFor('queries', args),
    columns: ['Rows', 'Query', 'p50', 'p95'],
    rows: profile,
    notes: ['Straight through the Warehouse, no HTTP; same data and run as the table above.'],
  },
])
