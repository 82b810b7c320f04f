import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Core } from '../bootstrap.ts'
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
 * Alert storage, detection every minute and webhook delivery (ALERT_WEBHOOK_URLS,
 * signed with ALERT_WEBHOOK_SECRET) over a Core. In server mode every API
 * instance runs the detector; alert ids collapse repeats in ClickHouse and a
 * Redis claim makes one instance deliver each alert.
 */
export function createAlertsService(core: Core, opts: { everyMs?: number } = {}): AlertsService {
  const warn = (msg: string, obj: object) => console.warn(msg, obj)
  const store = createAlertStore(core.warehouse)
  const urls = parseWebhookUrls(core.env.ALERT_WEBHOOK_URLS)
  const notifier = urls.length
    ? createWebhookNotifier({ urls, secret: core.env.ALERT_WEBHOOK_SECRET, warn })
    : undefined
  let redis: Redis | undefined
  let claim: ((alertId: string) => Promise<boolean>) | undefined
  if (notifier && core.env.REDIS_URL) {
    const instance = randomUUID()
    const client = new Redis(core.env.REDIS_URL, { commandTimeout: 2_000, maxRetriesPerRequest: 1 })
    client.on('error', () => {})
    redis = client
    claim = async (alertId) => {
      const key = `{tm}:alert-claim:${alertId}`
      if ((await client.set(key, instance, 'PX', CLAIM_TTL_MS, 'NX')) === 'OK') return true
      return (await client.get(key)) === instance
    }
  }
  const monitor = createAlertMonitor({
    warehouse: core.warehouse,
    store: core.store,
    alerts: store,
    notifier,
    claim,
    everyMs: opts.everyMs,
    warn,
  })
  return {
    store,
    monitor,
    async close() {
      await monitor.stop()
      if (redis) await redis.quit().catch(() => redis?.disconnect())
    },
  }
}
