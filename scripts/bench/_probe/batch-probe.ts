import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrate } from '../../../services/src/core/migrations.ts'
import { createWarehouse } from '../../../services/src/core/warehouse.ts'
import { createCatalogue } from '../../../services/src/demo/usage-catalogue.ts'
import { generateUsage } from '../../../services/src/demo/usage-generator.ts'

const dir = mkdtempSync(join(tmpdir(), 'ingprobe-'))
const wh = createWarehouse({ path: join(dir, 'ch') })
await migrate(wh, { retentionDays: 400 })
await wh.command('CREATE TABLE IF NOT EXISTS nomv_win AS requests')
await wh.command(
  'CREATE TABLE IF NOT EXISTS nomv_nowin AS requests ENGINE = MergeTree PARTITION BY toYYYYMM(started_at) ORDER BY (toDate(started_at), team_id, key_id, model, started_at)',
)
await wh.command('CREATE TABLE IF NOT EXISTS nomv_memory (x UInt8) ENGINE = Null')
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const rows = generateUsage({ catalogue, seed: 7, from: now - 3600_000, to: now, rows: 100_000 })
let tok = 0
async function run(table: string, batch: number, total: number, token: boolean) {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < total; i += batch)
    await wh.insertRows(
      table,
      rows.slice(i % 100000, (i % 100000) + batch),
      token ? { dedupToken: `k${tok++}` } : {},
    )
  const wall = performance.now() - t0
  const c = process.cpuUsage(cpu0)
  const cpu = (c.user + c.system) / 1000
  console.log(
    table.padEnd(12),
    String(batch).padStart(6),
    token ? 'tok  ' : 'notok',
    'wall/insert',
    (wall / (total / batch)).toFixed(1),
    'ms  cpu/insert',
    (cpu / (total / batch)).toFixed(1),
    'ms  cpu µs/row',
    ((cpu * 1000) / total).toFixed(1),
  )
}
await wh.command('SYSTEM STOP MERGES')
for (const b of [1000, 5000, 20000, 100000]) {
  await run('nomv_win', b, 100000, true)
  await run('nomv_nowin', b, 100000, true)
  await run('nomv_nowin', b, 100000, false)
  await run('requests', b, 100000, true)
}
await wh.close()
