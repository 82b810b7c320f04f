/**
 * Fills ClickHouse with realistic synthetic usage (for benchmarks and for
 * trying the dashboard at scale):
 *
 *   npm exec -- node scripts/generate-usage.ts --rows 10000000 --days 30
 *
 * Writes to the embedded engine under DATA_DIR (default ./data; the server
 * must not be running on it: one process per data directory), or to the
 * server at CLICKHOUSE_URL. Rows go through the normal insert path, so every
 * rollup is fed as in production. Each insert carries a dedup token derived
 * from the seed and range, so re-running the same command adds nothing.
 * Teams, users and model facades of the synthetic catalogue are registered
 * so the dashboard shows their names.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadEnv } from '../services/src/core/config/env.ts'
import { createAdminStore } from '../services/src/core/identity/admin-store.ts'
import { migrate } from '../services/src/core/storage/migrations.ts'
import { createWarehouse } from '../services/src/core/storage/warehouse.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { createCatalogue } from '../services/src/demo/usage-catalogue.ts'
import { generateUsageBatches } from '../services/src/demo/usage-generator.ts'

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    days: { type: 'string', default: '30' },
    seed: { type: 'string', default: '1' },
    end: { type: 'string' },
    teams: { type: 'string', default: '12' },
    'users-per-team': { type: 'string', default: '25' },
    'insert-rows': { type: 'string', default: '200000' },
    'no-entities': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (args.help) {
  console.log(`Usage: node scripts/generate-usage.ts [--rows N] [--days D] [--seed S] [--end ISO]
       [--teams T] [--users-per-team U] [--insert-rows R] [--no-entities]
Target: CLICKHOUSE_URL (server) or DATA_DIR (embedded, default ./data).`)
  process.exit(0)
}

const int = (name: string, v: string | undefined) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`)
  return n
}
const rows = int('rows', args.rows)
const days = int('days', args.days)
const seed = int('seed', args.seed)
const insertRows = Math.max(1_000, int('insert-rows', args['insert-rows']))
// Whole hours, so the same command names the same range (and dedup tokens) within the hour.
const end = args.end ? Date.parse(args.end) : Math.floor(Date.now() / 3_600_000) * 3_600_000
if (Number.isNaN(end)) throw new Error(`--end must be an ISO date, got ${args.end}`)
const from = end - days * 86_400_000

const env = loadEnv()
const wh = createWarehouse({
  url: env.CLICKHOUSE_URL,
  username: env.CLICKHOUSE_USER,
  password: env.CLICKHOUSE_PASSWORD,
  database: env.CLICKHOUSE_DATABASE,
  path: join(env.DATA_DIR, 'clickhouse'),
  requestTimeoutMs: 300_000,
})
await migrate(wh, { retentionDays: env.RAW_RETENTION_DAYS })

const catalogue = createCatalogue({
  seed,
  teams: int('teams', args.teams),
  usersPerTeam: int('users-per-team', args['users-per-team']),
  prefix: 'bench',
})
if (!args['no-entities']) {
  const store = createAdminStore(wh)
  await store.refresh()
  for (const t of catalogue.teams) if (!store.team(t.teamId)) await store.upsertTeam(t)
  for (const u of catalogue.users) if (!store.user(u.userId)) await store.upsertUser(u)
  for (const m of catalogue.models) if (!store.model(m.facade.model)) await store.upsertModel(m.facade)
}

const target = env.CLICKHOUSE_URL ?? `embedded ${env.DATA_DIR}`
console.log(
  `Generating ${rows.toLocaleString()} rows over ${days} days ending ${new Date(end).toISOString()} into ${target}`,
)
console.log(
  `  ${catalogue.teams.length} teams, ${catalogue.users.length} users, ${catalogue.keys.length} keys`,
)

const genBatch = 5_000
const perInsert = Math.max(1, Math.round(insertRows / genBatch))
const token = (group: number) => `gen-${seed}-${from}-${rows}-${group}`
const started = performance.now()
// Process CPU includes the embedded engine's threads: a fairer figure than wall time on a busy machine.
const cpuStart = process.cpuUsage()
let genMs = 0
let done = 0
let group = 0
let pending: UsageRow[] = []
let inFlight: Promise<void> | undefined
let lastReport = started

// One insert in flight while the next batch is generated: ClickHouse parses
// and aggregates on its own threads, so generation overlaps with it.
async function flush() {
  if (pending.length === 0) return
  const batch = pending
  const tok = token(group++)
  pending = []
  await inFlight
  inFlight = wh.insertRows('requests', batch, { dedupToken: tok }).then(() => {
    done += batch.length
    const now = performance.now()
    if (now - lastReport > 2_000) {
      lastReport = now
      const rate = Math.round(done / ((now - started) / 1000))
      console.log(`  ${done.toLocaleString()} rows, ${rate.toLocaleString()} rows/s`)
    }
  })
}

let t = performance.now()
for (const batch of generateUsageBatches({
  catalogue,
  seed,
  from,
  to: end,
  rows,
  batchSize: genBatch,
  batchId: (i) => token(Math.floor(i / perInsert)),
})) {
  for (const row of batch.rows) pending.push(row)
  if ((batch.index + 1) % perInsert === 0) {
    genMs += performance.now() - t
    await flush()
    t = performance.now()
  }
}
genMs += performance.now() - t
await flush()
await inFlight
const seconds = (performance.now() - started) / 1000
const cpu = process.cpuUsage(cpuStart)
const cpuSeconds = (cpu.user + cpu.system) / 1e6
console.log(
  `Inserted ${done.toLocaleString()} rows in ${seconds.toFixed(1)} s: ${Math.round(done / seconds).toLocaleString()} rows/s ` +
    `(${cpuSeconds.toFixed(1)} CPU-s in this process${env.CLICKHOUSE_URL ? '' : ', engine included'}; ` +
    `generation alone ${Math.round(rows / (genMs / 1000)).toLocaleString()} rows/s)`,
)
await wh.close()
