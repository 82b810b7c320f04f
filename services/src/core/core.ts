import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { type BudgetEnforcer, createNoopBudgetEnforcer } from '../budgets/budget-enforcer.ts'
import { type AdminStore, createAdminStore } from './admin-store.ts'
import type { Env } from './env.ts'
import { registerRecorderMetrics } from './metrics.ts'
import { migrate } from './migrations.ts'
import {
  createUsageRecorder,
  type RecorderLogger,
  type SpillSink,
  type UsageRecorder,
} from './usage-recorder.ts'
import { createWarehouse, type Warehouse } from './warehouse.ts'

/**
 * The shared resources of one process, built once and handed to every
 * service plugin. Tests build a Core over a temporary data directory, or pass
 * their own (faulty) pieces through `overrides`.
 */
export interface Core {
  env: Env
  warehouse: Warehouse
  store: AdminStore
  recorder: UsageRecorder
  budgets: BudgetEnforcer
  /** Prometheus registry of this process; each module registers its own metrics here. */
  metrics: Registry
  /** The bootstrap admin token in force (generated when ADMIN_TOKEN is unset). */
  adminToken: string
  close(): Promise<void>
}

export interface CoreOverrides {
  warehouse?: Warehouse
  spill?: SpillSink
  budgets?: BudgetEnforcer
  logger?: RecorderLogger
}

const consoleLogger: RecorderLogger = {
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
}

export async function createCore(env: Env, overrides: CoreOverrides = {}): Promise<Core> {
  const warehouse =
    overrides.warehouse ??
    createWarehouse({
      url: env.CLICKHOUSE_URL,
      username: env.CLICKHOUSE_USER,
      password: env.CLICKHOUSE_PASSWORD,
      database: env.CLICKHOUSE_DATABASE,
      path: join(env.DATA_DIR, 'clickhouse'),
    })
  await migrate(warehouse, { retentionDays: env.RAW_RETENTION_DAYS, cluster: env.CLICKHOUSE_CLUSTER })
  const store = createAdminStore(warehouse)
  await store.refresh()
  // Other instances' admin writes (revocations above all) must hold here within a second.
  const refresher =
    warehouse.mode === 'server'
      ? setInterval(() => void store.refresh().catch(() => {}), 1_000).unref()
      : undefined
  const recorder = createUsageRecorder({
    warehouse,
    spill: overrides.spill,
    maxRows: env.RECORDER_MAX_ROWS,
    flushMs: env.RECORDER_FLUSH_MS,
    insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
    logger: overrides.logger ?? consoleLogger,
  })
  const budgets = overrides.budgets ?? createNoopBudgetEnforcer()
  const metrics = new Registry()
  registerRecorderMetrics(metrics, recorder)
  return {
    env,
    warehouse,
    store,
    recorder,
    budgets,
    metrics,
    adminToken: env.ADMIN_TOKEN ?? `tma_${randomBytes(24).toString('base64url')}`,
    async close() {
      if (refresher) clearInterval(refresher)
      // Order matters: usage first (it needs the warehouse), the client last.
      await recorder.close()
      await budgets.close()
      await warehouse.close()
    },
  }
}
