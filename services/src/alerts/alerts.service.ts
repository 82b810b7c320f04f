import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Env } from '../core/config/env.ts'
import type { ReportError } from '../core/errors/background-errors.ts'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import { type AlertMonitor, createAlertMonitor } from './alert-monitor.ts'
import { type AlertStore, createAlertStore } from './alert-store.ts'
import { createWebhookNotifier, parseWebhookUrls } from './webhook-notifier.ts'

export interface AlertsService {
  store: AlertStore
  monitor: AlertMonitor
  close(): Promise<void>
}

// While one instance holds the claim, others leave the delivery to it; the
// claim lapses so a crashed holder's alerts are taken over.
const CLAIM_TTL_MS = 10 * 60_000

/**
 * Alert storage, detection every ALERT_CHECK_MS and webhook delivery
 * (ALERT_WEBHOOK_URLS, signed with ALERT_WEBHOOK_SECRET); bootstrap.ts starts
 * the monitor for the api role. In server mode every API instance runs the
 * detector; alert ids collapse repeats in ClickHouse and a Redis claim makes
 * one instance deliver each alert.
 */
export function createAlertsService(deps: {
  env: Env
  warehouse: Warehouse
  store: AdminStore
  log: Logger
  /** The claim's Redis connection failures: logged and counted (core/errors/background-errors.ts). */
  reportError: ReportError
}): AlertsService {
  const { env } = deps
  const store = createAlertStore(deps.warehouse)
  const urls = parseWebhookUrls(env.ALERT_WEBHOOK_URLS)
  const notifier = urls.length
    ? createWebhookNotifier({ urls, secret: env.ALERT_WEBHOOK_SECRET, log: deps.log })
    : undefined
  let redis: Redis | undefined
  let claim: ((alertId: string) => Promise<boolean>) | undefined
  if (notifier && env.REDIS_URL) {
    const instance = randomUUID()
    const client = new Redis(env.REDIS_URL, { commandTimeout: 2_000, maxRetriesPerRequest: 1 })
    client.on('error', (err) => deps.reportError('alert_claim_redis', err))
    redis = client
    claim = async (alertId) => {
      const key = `{tm}:alert-claim:${alertId}`
      if ((await client.set(key, instance, 'PX', CLAIM_TTL_MS, 'NX')) === 'OK') return true
      return (await client.get(key)) === instance
    }
  }
  const monitor = createAlertMonitor({
    warehouse: deps.warehouse,
    store: deps.store,
    alerts: store,
    notifier,
    claim,
    everyMs: env.ALERT_CHECK_MS,
    log: deps.log,
  })
  return {
    store,
    monitor,
    async close() {
      await monitor.stop()
      if (redis) {
        await redis.quit().catch((err) => {
          // Redis away at shutdown: drop the connection instead of waiting for it.
          deps.reportError('alert_claim_redis', err)
          redis?.disconnect()
        })
      }
    },
  }
}
