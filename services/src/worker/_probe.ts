import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeUsageRow } from '../../../tests/helpers/clickhouse-http-checks.ts'
import { startRedis } from '../../../tests/helpers/redis-server.ts'
import { createDiskSpool } from './disk-spool.ts'
import { createRedisSpill } from './redis-spill.ts'

const r = await startRedis(['--appendonly', 'yes'])
const spool = createDiskSpool({ dir: mkdtempSync(join(tmpdir(), 'x-')), maxBytes: 1e8 })
const rs = createRedisSpill({ url: r.url, maxBytes: 1e8, fallback: spool, logger: console })
await new Promise((res) => setTimeout(res, 300))
const b = () => ({ batchId: crypto.randomUUID(), createdAt: Date.now(), rows: [makeUsageRow(1)] })
let t = Date.now()
await rs.spill(b(), 'x')
console.log('redis spill', Date.now() - t, await rs.status())
await r.stop()
t = Date.now()
await rs.spill(b(), 'x')
console.log('down spill', Date.now() - t, await spool.status())
await r.restart()
await new Promise((res) => setTimeout(res, 2500))
t = Date.now()
await rs.spill(b(), 'x')
console.log('back spill', Date.now() - t, (await rs.status()).jobs)
await rs.close()
await spool.close()
await r.stop()
