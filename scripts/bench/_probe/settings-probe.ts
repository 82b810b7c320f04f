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
await wh.close()
const c = createChdbConnection({ path: join(dir, 'ch') }) as any
const q = async (sql: string) => (await c.chdb.queryAsync(sql + ' FORMAT JSONEachRow')).text()
await c.chdb.queryAsync('CREATE TABLE IF NOT EXISTS requests_nomv AS requests')
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const N = Number(process.argv[2] ?? 100000)
const rows = generateUsage({ catalogue, seed: 7, from: now - 86400000, to: now, rows: N })
const cols = Object.keys(rows[0]!)
const jsonBuf = Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n')
const compactBuf = Buffer.from(
  rows.map((r) => JSON.stringify(cols.map((k) => (r as any)[k]))).join('\n') + '\n',
)
let tok = 0
const variants: [string, () => Promise<unknown>][] = [
  [
    'json mv',
    () =>
      c.chdb.rawInsert({
        table: 'requests',
        values: jsonBuf,
        format: 'JSONEachRow',
        settings: {
          insert_deduplication_token: `t${tok++}`,
          deduplicate_blocks_in_dependent_materialized_views: 1,
        },
      }),
  ],
  [
    'compact mv',
    () =>
      c.chdb.rawInsert({
        table: 'requests',
        columns: cols,
        values: compactBuf,
        format: 'JSONCompactEachRow',
        settings: {
          insert_deduplication_token: `t${tok++}`,
          deduplicate_blocks_in_dependent_materialized_views: 1,
        },
      }),
  ],
  [
    'compact mv parallel_view',
    () =>
      c.chdb.rawInsert({
        table: 'requests',
        columns: cols,
        values: compactBuf,
        format: 'JSONCompactEachRow',
        settings: {
          insert_deduplication_token: `t${tok++}`,
          deduplicate_blocks_in_dependent_materialized_views: 1,
          parallel_view_processing: 1,
        },
      }),
  ],
  [
    'compact nomv',
    () =>
      c.chdb.rawInsert({
        table: 'requests_nomv',
        columns: cols,
        values: compactBuf,
        format: 'JSONCompactEachRow',
        settings: { insert_deduplication_token: `t${tok++}` },
      }),
  ],
  [
    'compact mv no-dedup-token',
    () =>
      c.chdb.rawInsert({
        table: 'requests',
        columns: cols,
        values: compactBuf,
        format: 'JSONCompactEachRow',
        settings: {
          insert_deduplication_token: `t${tok++}`,
          deduplicate_blocks_in_dependent_materialized_views: 0,
        },
      }),
  ],
]
await c.chdb.queryAsync('SYSTEM STOP MERGES')
for (let rep = 0; rep < 3; rep++) {
  for (const [label, fn] of variants) {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await fn()
    const wall = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    console.log(
      label.padEnd(28),
      'wall',
      wall.toFixed(0).padStart(5),
      'ms  cpu',
      ((cpu.user + cpu.system) / 1000).toFixed(0).padStart(5),
      'ms  ',
      Math.round(N / (wall / 1000)),
      'rows/s',
    )
  }
}
console.log(
  await q(
    "SELECT name, value FROM system.settings WHERE name IN ('max_insert_threads','input_format_parallel_parsing','max_threads','min_insert_block_size_rows','optimize_on_insert','log_queries')",
  ),
)
console.log(await q('SELECT count() FROM system.query_log'))
