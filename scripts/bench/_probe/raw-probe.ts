import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createChdbConnection } from 'chdb/connection'
import { migrate } from '/work/main/services/src/core/migrations.ts'
import { createWarehouse } from '/work/main/services/src/core/warehouse.ts'
import { createCatalogue } from '/work/main/services/src/demo/usage-catalogue.ts'
import { generateUsage } from '/work/main/services/src/demo/usage-generator.ts'

const dir = mkdtempSync(join(tmpdir(), 'ingprobe-'))
const wh = createWarehouse({ path: join(dir, 'ch') })
await migrate(wh, { retentionDays: 400 })
const conn = (wh.client as any).connection ?? undefined
console.log('client keys', Object.keys(wh.client as any))
await wh.close()
const c = createChdbConnection({ path: join(dir, 'ch') }) as any
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const N = Number(process.argv[2] ?? 100000)
const rows = generateUsage({ catalogue, seed: 7, from: now - 86400000, to: now, rows: N })
const cols = Object.keys(rows[0]!)
const time = async (label: string, fn: () => Promise<unknown>) => {
  const t0 = performance.now()
  const r = await fn()
  const ms = performance.now() - t0
  console.log(
    label,
    ms.toFixed(0),
    'ms',
    Math.round(N / (ms / 1000)),
    'rows/s',
    JSON.stringify(r)?.slice(0, 200),
  )
}
let i = 0
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now()
  let body = ''
  for (const r of rows) body += `${JSON.stringify(r)}\n`
  const buf = Buffer.from(body)
  console.log('json ser+buf', (performance.now() - t).toFixed(0))
  await time('raw JSONEachRow MVs', () =>
    c.chdb.rawInsert({
      table: 'requests',
      values: buf,
      format: 'JSONEachRow',
      settings: {
        insert_deduplication_token: `r${i++}`,
        deduplicate_blocks_in_dependent_materialized_views: 1,
        async_insert: 0,
      },
    }),
  )
  t = performance.now()
  let cbody = ''
  for (const r of rows) cbody += `${JSON.stringify(cols.map((k) => (r as any)[k]))}\n`
  const cbuf = Buffer.from(cbody)
  console.log('compact ser+buf', (performance.now() - t).toFixed(0))
  await time('raw JSONCompactEachRow MVs', () =>
    c.chdb.rawInsert({
      table: 'requests',
      columns: cols,
      values: cbuf,
      format: 'JSONCompactEachRow',
      settings: {
        insert_deduplication_token: `r${i++}`,
        deduplicate_blocks_in_dependent_materialized_views: 1,
        async_insert: 0,
      },
    }),
  )
  await time('string-exec JSONCompactEachRow MVs', () =>
    c.exec({
      query: `INSERT INTO requests (${cols.join(',')}) SETTINGS insert_deduplication_token='r${i++}', deduplicate_blocks_in_dependent_materialized_views=1 FORMAT JSONCompactEachRow`,
      values: cbody,
    }),
  )
  await time('string-exec JSONEachRow MVs', () =>
    c.exec({
      query: `INSERT INTO requests SETTINGS insert_deduplication_token='r${i++}', deduplicate_blocks_in_dependent_materialized_views=1 FORMAT JSONEachRow`,
      values: body,
    }),
  )
}
const r = await c.chdb.queryAsync(
  'SELECT table, count() parts, sum(rows) rows FROM system.parts WHERE active AND database=currentDatabase() GROUP BY table FORMAT JSONEachRow',
)
console.log(r.text())
