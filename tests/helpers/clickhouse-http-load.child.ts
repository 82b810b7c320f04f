/**
 * Child process for the "killed with SIGKILL under load" test: a real Core in
 * server mode whose recorder takes one row every ROW_EVERY_MS (the gateway's
 * hot path is exactly `recorder.record(row)` after the client's answer), and
 * reports on stdout what a client would know and what the recorder has made
 * durable:
 *   A <request_id>   the row was accepted (the client got its answer)
 *   D <n>            rows inserted into ClickHouse or spilled, so far
 */
import { createCore } from '../../services/src/core/core.ts'
import { parseEnv } from '../../services/src/core/env.ts'
import { makeUsageRow } from './clickhouse-http-checks.ts'

const env = parseEnv({ ...process.env, ROLES: 'api', DEMO: 'false', LOG_LEVEL: 'silent' })
const core = await createCore(env, { logger: { warn() {}, error() {} } })
const every = Number(process.env.ROW_EVERY_MS ?? 2)
let i = 0
let lastDurable = -1
process.stdout.write('READY\n')
setInterval(() => {
  const row = makeUsageRow(i++)
  core.recorder.record(row)
  let out = `A ${row.request_id}\n`
  const s = core.recorder.stats()
  const durable = s.inserted + s.spilled
  if (durable !== lastDurable) {
    lastDurable = durable
    out += `D ${durable}\n`
  }
  process.stdout.write(out)
}, every)
