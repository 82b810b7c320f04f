import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createWarehouse } from '../../../services/src/core/warehouse.ts'
import { migrate } from '../../../services/src/core/migrations.ts'
import { createCatalogue } from '../../../services/src/demo/usage-catalogue.ts'
import { generateUsage } from '../../../services/src/demo/usage-generator.ts'

const dir = mkdtempSync(join(tmpdir(), 'ingprobe-'))
const wh = createWarehouse({ path: join(dir, 'ch') })
await migrate(wh, { retentionDays: 400 })
await wh.command('CREATE TABLE IF NOT EXISTS nomv AS requests')
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const N = 50_000
const rows = generateUsage({ catalogue, seed: 7, from: now - 30 * 86400_000, to: now, rows: N })
let tok = 0
async function run(label: string, table: string, extra: string[] = []) {
  const samples: number[] = []
  for (let rep = 0; rep < 3; rep++) {
    const cpu0 = process.cpuUsage()
    await wh.insertRows(table, rows, { dedupToken: `k${tok++}` })
    const c = process.cpuUsage(cpu0)
    samples.push((c.user + c.system) / N)
  }
  samples.sort((a, b) => a - b)
  console.log(label.padEnd(40), 'cpu µs/row min', samples[0]!.toFixed(1), 'med', samples[1]!.toFixed(1))
}
await wh.command('SYSTEM STOP MERGES')
await run('3 mvs', 'requests')
await run('3 mvs', 'requests')
await wh.command('DETACH TABLE usage_1d_mv')
await run('2 mvs (5m,1h)', 'requests')
await wh.command('DETACH TABLE usage_1h_mv')
await run('1 mv (5m)', 'requests')
await wh.command('DETACH TABLE usage_5m_mv')
await run('0 mv (requests)', 'requests')
await wh.command('ATTACH TABLE usage_5m_mv')
await wh.command('ATTACH TABLE usage_1h_mv')
await wh.command('ATTACH TABLE usage_1d_mv')
{
  const samples: number[] = []
  for (let rep = 0; rep < 3; rep++) {
    const cols = Object.keys(rows[0]!)
    const body = rows.map((r) => JSON.stringify(cols.map((k) => (r as any)[k]))).join('\n')
    const cpu0 = process.cpuUsage()
    await wh.client.exec({ query: `INSERT INTO requests (${cols.join(',')}) SETTINGS insert_deduplication_token='o${rep}', deduplicate_blocks_in_dependent_materialized_views=1, optimize_on_insert=0 FORMAT JSONCompactEachRow`, values: body } as never)
    const c = process.cpuUsage(cpu0)
    samples.push((c.user + c.system) / N)
  }
  console.log('3 mvs optimize_on_insert=0 (ser excluded)', samples.map((x) => x.toFixed(1)))
}
await wh.command('SYSTEM START MERGES')
const t = performance.now(); const cpu0 = process.cpuUsage()
await wh.command('OPTIMIZE TABLE requests FINAL'); await wh.command('OPTIMIZE TABLE usage_5m FINAL'); await wh.command('OPTIMIZE TABLE usage_1h FINAL'); await wh.command('OPTIMIZE TABLE usage_1d FINAL')
const c = process.cpuUsage(cpu0)
console.log('merge all (optimize final) cpu ms', ((c.user + c.system) / 1000).toFixed(0), 'wall', (performance.now() - t).toFixed(0))
console.log(await wh.query("SELECT table, sum(rows) r FROM system.parts WHERE active AND database=currentDatabase() GROUP BY table"))
await wh.close()
