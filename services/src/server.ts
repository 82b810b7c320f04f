import type { Socket } from 'node:net'
import { pino } from 'pino'
import { bootstrap } from './bootstrap.ts'
import { loadEnv } from './core/config/env.ts'

/**
 * Starts this process's roles (bootstrap.ts builds them), listens, and shuts
 * down in order on SIGTERM/SIGINT: stop taking HTTP, then everything bootstrap
 * started, in reverse. With no configuration it is the whole product on the
 * embedded engine.
 */
const env = loadEnv()
// One JSON logger for the process: HTTP requests (with request ids), the
// recorder, spill and replay all write structured lines to stdout.
const log = pino({ level: env.LOG_LEVEL })
const running = await bootstrap(env, { logger: log })
const { app, core } = running

const address = await app.listen({ host: env.HOST, port: env.PORT })
const url = address.replace('127.0.0.1', 'localhost')
console.log(`\nTokenmeter is running at ${url}`)
console.log(
  `  ClickHouse: ${core.warehouse.mode === 'embedded' ? `embedded (${env.DATA_DIR})` : env.CLICKHOUSE_URL}`,
)
// With the journal on, it is the local outage store; the disk spool only serves JOURNAL=off.
const localStore =
  env.JOURNAL === 'on' ? `usage journal (${env.DATA_DIR}/journal)` : `disk spool (${env.DATA_DIR}/spool)`
console.log(
  `  Outage store: ${env.REDIS_URL ? `Redis (BullMQ), ${localStore} behind it` : localStore}; replay ${core.roles.has('worker') ? 'in this process' : 'in the worker process'}`,
)
if (!env.ADMIN_TOKEN) console.log(`  Admin token (set ADMIN_TOKEN to choose your own): ${core.adminToken}`)
running.listening(address, url)

let stopping = false
// Node counts a connection that has not sent a byte yet as busy until
// headersTimeout (a minute), so app.close() would wait for connections a
// client pool or load balancer opened ahead of need. Those are closed at
// shutdown (and refused once it began); the others end when answered.
const sockets = new Set<Socket>()
app.server.on('connection', (socket: Socket) => {
  if (stopping) return void socket.destroy()
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
})
async function closeHttp() {
  const closed = app.close()
  for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy()
  await closed
}
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  app.log.info({ signal }, 'shutting down')
  try {
    await running.close(closeHttp)
  } catch (err) {
    app.log.error({ err }, 'shutdown did not finish cleanly')
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
