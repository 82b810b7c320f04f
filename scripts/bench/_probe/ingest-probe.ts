import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrate } from '/work/main/services/src/core/migrations.ts'
import { usageRowSchema } from '/work/main/services/src/core/usage-row.ts'
import { createWarehouse } from '/work/main/services/src/core/warehouse.ts'
import { createCatalogue } from '/work/main/services/src/demo/usage-catalogue.ts'
import { generateUsage } from '/work/main/services/src/demo/usage-generator.ts'

const dir = mkdtempSync(join(tmpdir(), 'ingprobe-'))
const wh = createWarehouse({ path: join(dir, 'ch') })
await migrate(wh, { retentionDays: 400 })
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const N = Number(process.argv[2] ?? 100000)
let t = performance.now()
const rows = generateUsage({ catalogue, seed: 7, from: now - 86400000, to: now, rows: N })
console.log('gen', (performance.now() - t).toFixed(0), 'ms')
t = performance.now()
let body = ''
for (const r of rows) body += `${JSON.stringify(r)}\n`
console.log('json serialise', (performance.now() - t).toFixed(0), 'ms', (body.length / 1e6).toFixed(1), 'MB')
t = performance.now()
let ok = 0
for (const r of rows) if (usageRowSchema.safeParse(r).success) ok++
console.log('zod validate', (performance.now() - t).toFixed(0), 'ms', ok)
const time = async (label: string, fn: () => Promise<unknown>) => {
  const t0 = performance.now()
  await fn()
  const ms = performance.now() - t0
  console.log(label, ms.toFixed(0), 'ms', Math.round(N / (ms / 1000)), 'rows/s')
}
for (let i = 0; i < 2; i++) {
  await time('insertRows JSONEachRow (MVs)', () => wh.insertRows('requests', rows, { dedupToken: `t${i}` }))
}
// raw insert of prebuilt body: clickhouse-side cost only
await time('exec prebuilt JSONEachRow (MVs)', () =>
  wh.client.exec({
    query:
      "INSERT INTO requests SETTINGS insert_deduplication_token='x1', deduplicate_blocks_in_dependent_materialized_views=1, async_insert=0 FORMAT JSONEachRow",
    values: body,
  } as never),
)
// without MVs: a copy table
await wh.command('CREATE TABLE IF NOT EXISTS requests_nomv AS requests')
await time('exec prebuilt JSONEachRow (no MV)', () =>
  wh.client.exec({
    query:
      "INSERT INTO requests_nomv SETTINGS insert_deduplication_token='x2', async_insert=0 FORMAT JSONEachRow",
    values: body,
  } as never),
)
// JSONCompactEachRow
const cols = Object.keys(rows[0]!)
t = performance.now()
let cbody = ''
for (const r of rows) cbody += `${JSON.stringify(cols.map((c) => (r as any)[c]))}\n`
console.log(
  'compact serialise',
  (performance.now() - t).toFixed(0),
  'ms',
  (cbody.length / 1e6).toFixed(1),
  'MB',
)
await time('exec JSONCompactEachRow (MVs)', () =>
  wh.client.exec({
    query: `INSERT INTO requests (${cols.join(',')}) SETTINGS insert_deduplication_token='x3', deduplicate_blocks_in_dependent_materialized_views=1, async_insert=0 FORMAT JSONCompactEachRow`,
    values: cbody,
  } as never),
)
await time('exec JSONCompactEachRow (no MV)', () =>
  wh.client.exec({
    query: `INSERT INTO requests_nomv (${cols.join(',')}) SETTINGS insert_deduplication_token='x4', async_insert=0 FORMAT JSONCompactEachRow`,
    values: cbody,
  } as never),
)
// TSV
const esc = (v: unknown) =>
  Array.isArray(v)
    ? `[${v.map((x) => `'${x}'`).join(',')}]`
    : typeof v === 'boolean'
      ? v
        ? 'true'
        : 'false'
      : String(v)
t = performance.now()
let tbody = ''
for (const r of rows) {
  let line = ''
  for (let i = 0; i < cols.length; i++) line += (i ? '\t' : '') + esc((r as any)[cols[i]!])
  tbody += line + '\n'
}
console.log('tsv serialise', (performance.now() - t).toFixed(0), 'ms', (tbody.length / 1e6).toFixed(1), 'MB')
await time('exec TSV (MVs)', () =>
  wh.client.exec({
    query: `INSERT INTO requests (${cols.join(',')}) SETTINGS insert_deduplication_token='x5', deduplicate_blocks_in_dependent_materialized_views=1, async_insert=0 FORMAT TabSeparated`,
    values: tbody,
  } as never),
)
await time('exec TSV (no MV)', () =>
  wh.client.exec({
    query: `INSERT INTO requests_nomv (${cols.join(',')}) SETTINGS insert_deduplication_token='x6', async_insert=0 FORMAT TabSeparated`,
    values: tbody,
  } as never),
)
console.log(
  await wh.query(
    'SELECT table, count() parts, sum(rows) rows FROM system.parts WHERE active AND database=currentDatabase() GROUP BY table',
  ),
)
await wh.close()
