import type { Socket } from 'node:net'
import { pino } from 'pino'
import type { Role } from './app.ts'
import { buildApp } from './app.ts'
import { createCore } from './bootstrap.ts'
import { loadEnv } from './core/config/env.ts'
import { prepareDemo, startDemo } from './demo/demo-runner.ts'
import { createFakeUpstream } from './simulator/fake-upstream.ts'

/**
 * Starts this process's roles and shuts down in order on SIGTERM/SIGINT:
 * stop taking HTTP, close the workers, flush the recorder, close clients.
 * With no configuration it is the whole product on the embedded engine.
 */
const env = loadEnv()
const roles = env.ROLES.split(',').map((r) => r.trim()) as Role[]
// One JSON logger for the process: HTTP requests (with request ids), the
// recorder, spill and replay all write structured lines to stdout.
const log = pino({ level: env.LOG_LEVEL })
const core = await createCore(env, { logger: log })
const demoSeed = env.DEMO && roles.includes('gateway') ? await prepareDemo(core) : undefined
// The built-in simulated provider (demo traffic) runs in process on a loopback port.
const simulator = roles.includes('gateway') ? await createFakeUpstream() : undefined
if (simulator) core.simulatedBaseUrl = `${simulator.url}/v1`
const app = await buildApp(core, { roles, loggerInstance: log })

const address = await app.listen({ host: env.HOST, port: env.PORT })
const url = address.replace('127.0.0.1', 'localhost')
console.log(`\nTokenmeter is running at ${url}`)
console.log(
  `  ClickHouse: ${core.warehouse.mode === 'embedded' ? `embedded (${env.DATA_DIR})` : env.CLICKHOUSE_URL}`,
)
console.log(
  `  Spill: ${env.REDIS_URL ? 'Redis (BullMQ), disk spool behind it' : `disk spool (${env.DATA_DIR}/spool)`}; replay ${roles.includes('worker') ? 'in this process' : 'in the worker process'}`,
)
if (!env.ADMIN_TOKEN) console.log(`  Admin token (set ADMIN_TOKEN to choose your own): ${core.adminToken}`)
const demo = demoSeed
  ? startDemo(core, demoSeed, { address, url, gateway: roles.includes('gateway'), logger: app.log })
  : undefined

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
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  app.log.info({ signal }, 'shutting down')
  try {
    await demo?.stop()
    const closed = app.close()
    for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy()
    await closed
    await simulator?.close()
    await core.close()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
