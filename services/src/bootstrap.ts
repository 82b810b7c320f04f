import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { createBudgetEnforcer } from './budgets/budget-enforcer.factory.ts'
import type { BudgetEnforcer } from './budgets/budget-enforcer.ts'
import type { Env } from './core/config/env.ts'
import { type BackgroundErrors, createBackgroundErrors } from './core/errors/background-errors.ts'
import { type AdminStore, createAdminStore } from './core/identity/admin-store.ts'
import { migrate } from './core/storage/migrations.ts'
import { createWarehouse, type Warehouse } from './core/storage/warehouse.ts'
import { registerRecorderMetrics } from './core/usage/recorder-metrics.ts'
import { createRowFeed, type RowFeed } from './core/usage/row-feed.ts'
import { createUsageJournal, type UsageJournal } from './core/usage/usage-journal.ts'
import {
  createUsageRecorder,
  type RecorderLogger,
  type SpillSink,
  type UsageRecorder,
} from './core/usage/usage-recorder.ts'
import { type JournalRecovery, startJournalRecovery } from './worker/journal-recovery.ts'
import { createOutageKit, type OutageKit } from './worker/outage-kit.ts'
import { registerOutageMetrics } from './worker/outage-metrics.ts'

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
  /** Recorded rows from this and (in server mode, through Redis) every other process, for live mode. */
  rowFeed: RowFeed
  budgets: BudgetEnforcer
  /** The write-ahead journal of usage rows (undefined with JOURNAL=off) and the delivery of what a previous run left in it. */
  journal: { journal: UsageJournal; recovery: JournalRecovery } | undefined
  /** Spill sinks, replay worker (with the 'worker' role), quarantine and ops operations. */
  outage: OutageKit
  /** Prometheus registry of this process; each module registers its own metrics here. */
  metrics: Registry
  /** Where un-awaited work reports its failures (logged and counted, never swallowed). */
  backgroundErrors: BackgroundErrors
  /** The bootstrap admin token in force (generated when ADMIN_TOKEN is unset). */
  adminToken: string
  /**
   * Base URL (with /v1) of the built-in simulated provider; server.ts starts it.
   * Unset, the gateway starts its own on the first simulated request.
   */
  simulatedBaseUrl?: string
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
      insertNice: env.EMBEDDED_INSERT_NICE,
    })
  await migrate(warehouse, { retentionDays: env.RAW_RETENTION_DAYS, cluster: env.CLICKHOUSE_CLUSTER })
  const metrics = new Registry()
  const log = overrides.logger ?? consoleLogger
  const backgroundErrors = createBackgroundErrors({ log, registry: metrics })
  const store = createAdminStore(warehouse)
  await store.refresh()
  // Other instances' admin writes (revocations above all) must hold here within a second.
  const refresher =
    warehouse.mode === 'server'
      ? setInterval(
          () => void store.refresh().catch(backgroundErrors.catcher('admin_refresh')),
          1_000,
        ).unref()
      : undefined
  const logger = overrides.logger ?? consoleLogger
  let recovery: JournalRecovery | undefined
  const outage = await createOutageKit({
    env,
    warehouse,
    logger,
    onBackgroundError: backgroundErrors.report,
    runWorker: env.ROLES.split(',').some((r) => r.trim() === 'worker'),
    journalStatus: () =>
      journal && recovery ? { status: journal.status(), recovery: recovery.progress() } : undefined,
  })
  const journal: UsageJournal | undefined =
    env.JOURNAL === 'on'
      ? createUsageJournal({
          dir: join(env.DATA_DIR, 'journal'),
          maxBytes: env.JOURNAL_MAX_BYTES,
          fsyncMs: env.JOURNAL_FSYNC_MS,
          logger,
        })
      : undefined
  // Before the recorder's first segment exists, so only leftovers are taken.
  recovery = journal
    ? startJournalRecovery({
        journal,
        insertBatch: outage.insertBatch,
        spill: overrides.spill ?? outage.sink,
        quarantine: outage.quarantine,
        logger,
      })
    : undefined
  const recorder = createUsageRecorder({
    warehouse,
    spill: overrides.spill ?? outage.sink,
    insertBatch: outage.insertBatch,
    maxRows: env.RECORDER_MAX_ROWS,
    flushMs: env.RECORDER_FLUSH_MS,
    insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
    logger,
    journal,
  })
  const budgets = overrides.budgets ?? createBudgetEnforcer({ env, store, warehouse })
  const rowFeed = createRowFeed({ recorder, redisUrl: env.REDIS_URL })
  registerRecorderMetrics(metrics, recorder)
  registerOutageMetrics(metrics, outage)
  return {
    env,
    warehouse,
    store,
    recorder,
    rowFeed,
    budgets,
    outage,
    journal: journal && recovery ? { journal, recovery } : undefined,
    metrics,
    backgroundErrors,
    adminToken: env.ADMIN_TOKEN ?? `tma_${randomBytes(24).toString('base64url')}`,
    async close() {
      if (refresher) clearInterval(refresher)
      // Order matters: the replay worker, then usage (it needs the warehouse
      // and the spill path), the spill stores, the client last.
      await rowFeed.close()
      await outage.stopWorker()
      await recovery?.stop()
      await recorder.close()
      const unsaved = recorder.stats().pendingRows
      if (unsaved > 0 && journal) {
        logger.warn(
          { rows: unsaved },
          'rows kept in the usage journal at shutdown: the next start delivers them',
        )
      } else if (unsaved > 0) {
        outage.rowsDropped.value += unsaved
        logger.error({ rows: unsaved }, 'rows dropped at shutdown: no spill path took them')
      }
      await journal?.close()
      await outage.close()
      await budgets.close()
      await warehouse.close()
    },
  }
}
