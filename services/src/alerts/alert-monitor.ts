import type { Logger } from 'pino'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import type { Alert } from './alert.ts'
import type { AlertStore } from './alert-store.ts'
import {
  type AnomalyOptions,
  DEFAULT_ANOMALY_OPTIONS,
  detectBudgetAlerts,
  detectRunawayDays,
  detectSpikes,
} from './anomaly-detector.ts'
import type { WebhookNotifier } from './webhook-notifier.ts'

export interface AlertMonitorDeps {
  warehouse: Warehouse
  store: Pick<AdminStore, 'budgets' | 'keys'>
  alerts: AlertStore
  notifier?: WebhookNotifier
  /**
   * Across instances, the right to deliver an alert (Redis SET NX in server
   * mode) so each webhook gets it from one instance; absent in the embedded default.
   */
  claim?: (alertId: string) => Promise<boolean>
  options?: Partial<AnomalyOptions>
  everyMs?: number
  log: Logger
}

export interface AlertMonitor {
  /**
   * Detects at `now` and stores what is new, then delivers what is not yet
   * delivered. `sinceMs` widens the hours and days examined (a backfill);
   * by default the current and previous hour and day.
   */
  runOnce(nowMs?: number, opts?: { sinceMs?: number }): Promise<Alert[]>
  start(): void
  stop(): Promise<void>
}

const HOUR = 3_600_000
const DAY = 86_400_000

export function createAlertMonitor(deps: AlertMonitorDeps): AlertMonitor {
  const o = { ...DEFAULT_ANOMALY_OPTIONS, ...deps.options }
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> | undefined

  async function deliverPending(nowMs: number) {
    if (!deps.notifier) return
    for (const alert of await deps.alerts.undelivered(new Date(nowMs - DAY))) {
      if (deps.claim && !(await deps.claim(alert.alertId))) continue
      if (await deps.notifier.deliver(alert)) await deps.alerts.markNotified(alert)
    }
  }

  const monitor: AlertMonitor = {
    async runOnce(nowMs = Date.now(), { sinceMs } = {}) {
      const fromHour = sinceMs ?? nowMs - HOUR
      const fromDay = sinceMs ?? nowMs - DAY
      const candidates = [
        ...(await detectSpikes(deps.warehouse, { fromMs: fromHour, toMs: nowMs }, o)),
        ...(await detectRunawayDays(deps.warehouse, { fromMs: fromDay, toMs: nowMs }, o)),
        ...(await detectBudgetAlerts(deps.warehouse, deps.store.budgets(), nowMs, o, deps.store.keys())),
      ]
      const fresh: Alert[] = []
      for (const c of candidates) {
        const stored = await deps.alerts.insertIfNew(c)
        if (stored) fresh.push(stored)
      }
      await deliverPending(nowMs)
      return fresh
    },
    start() {
      if (timer) return
      timer = setInterval(() => {
        running ??= monitor
          .runOnce()
          .catch((err) => deps.log.warn({ err: String(err) }, 'alert detection failed'))
          .finally(() => {
            running = undefined
          })
      }, deps.everyMs ?? 60_000)
      timer.unref()
    },
    async stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      await running
    },
  }
  return monitor
}
