import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { type Logger, pino } from 'pino'
import { Registry } from 'prom-client'
import { createAlertsService } from './alerts/alerts.service.ts'
import { buildApp } from './app.ts'
import { createBudgetEnforcer } from './budgets/budget-enforcer.factory.ts'
import type { BudgetEnforcer } from './budgets/budget-enforcer.ts'
import { type Env, type ProcessRole, rolesOf } from './core/config/env.ts'
import { type BackgroundErrors, createBackgroundErrors } from './core/errors/background-errors.ts'
import { type AdminStore, createAdminStore } from './core/identity/admin-store.ts'
import { migrate } from './core/storage/migrations.ts'
import { createWarehouse, type Warehouse } from './core/storage/warehouse.ts'
import { registerWarehouseMetrics } from './core/storage/warehouse-metrics.ts'
import { registerRecorderMetrics } from './core/usage/recorder-metrics.ts'
import { createRowFeed, type RowFeed } from './core/usage/row-feed.ts'
import { createUsageJournal, type UsageJournal } from './core/usage/usage-journal.ts'
import { createUsageRecorder, type SpillSink, type UsageRecorder } from './core/usage/usage-recorder.ts'
import { prepareDemo, startDemo } from './demo/demo-runner.ts'
import { createFakeUpstream } from './simulator/fake-upstream.ts'
import { insertNeverSent } from './worker/failure-classifier.ts'
import { type JournalRecovery, startJournalRecovery } from './worker/journal-recovery.ts'
import { createOutageKit, type OutageKit } from './worker/outage-kit.ts'
import { registerOutageMetrics } from './worker/outage-metrics.ts'

/**
 * The shared parts of one process, built once by createCore and handed to
 * every route plugin. Tests build a Core over a temporary data directory, or
 * pass their own (faulty) pieces through `overrides`.
 */
export interface Core {
  env: Env
  /** What this process runs (ROLES): which background jobs started, which routes buildApp mounts by default. */
  roles: ReadonlySet<ProcessRole>
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
  /** The process's logger; modules take child loggers of it. */
  log: Logger
  /** The bootstrap admin token in force (generated when ADMIN_TOKEN is unset). */
  adminToken: string
  /**
   * Base URL (with /v1) of the built-in simulated provider: createCore starts
   * it for a gateway with DEMO=true; a test may point it at its own fake.
   * Unset, a request for a `simulated` facade gets a 503 saying so.
   */
  simulatedBaseUrl?: string
  /** Stops every background job and closes every resource, in the reverse order of their start. */
  close(): Promise<void>
}

export interface CoreOverrides {
  warehouse?: Warehouse
  spill?: SpillSink
  budgets?: BudgetEnforcer
  /** The process's logger (server.ts: the pino logger of the HTTP app). Default: silent. */
  logger?: Logger
}

/** One resource or background job to stop at close, in the reverse order of the start. */
type Stop = () => Promise<void> | void

/**
 * The composition root of one process: builds what the configured roles
 * (env.ROLES) need, in one direction — config → storage → recorder →
 * gateway / API / worker — starts the background jobs each role owns, and
 * stops everything in reverse at close():
 * - every role: the admin-store refresher (server mode), the journal recovery;
 * - worker: the replay worker;
 * - api: the alert monitor (anomaly detection and webhooks);
 * - gateway with DEMO=true: the built-in simulated provider.
 */
export async function createCore(env: Env, overrides: CoreOverrides = {}): Promise<Core> {
  const roles = new Set(rolesOf(env))
  const log = overrides.logger ?? pino({ enabled: false })
  const stops: { what: string; stop: Stop }[] = []
  const onClose = (what: string, stop: Stop) => void stops.push({ what, stop })
  try {
    return await compose()
  } catch (err) {
    // A start that fails half way must not leave timers, sockets or the engine open.
    await stopAll().catch((stopErr) =>
      log.error({ err: stopErr }, 'could not stop what had started before the start failed'),
    )
    throw err
  }

  /** Every stop runs even when an earlier one fails; the failures are thrown together at the end. */
  async function stopAll() {
    const failed: Error[] = []
    for (const { what, stop } of stops.splice(0).reverse()) {
      try {
        await stop()
      } catch (err) {
        failed.push(
          new Error(`stopping the ${what} failed: ${err instanceof Error ? err.message : err}`, {
            cause: err,
          }),
        )
      }
    }
    if (failed.length === 1) throw failed[0]
    if (failed.length > 1) throw new AggregateError(failed, 'several parts failed to stop')
  }

  async function compose(): Promise<Core> {
    // Storage.
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
    onClose('warehouse', () => warehouse.close())
    await migrate(warehouse, { retentionDays: env.RAW_RETENTION_DAYS, cluster: env.CLICKHOUSE_CLUSTER })
    const metrics = new Registry()
    const backgroundErrors = createBackgroundErrors({ log, registry: metrics })
    const store = createAdminStore(warehouse)
    await store.refresh()
    if (warehouse.mode === 'server') {
      // Other instances' admin writes (revocations above all) must hold here within a second.
      const refresher = setInterval(
        () => void store.refresh().catch(backgroundErrors.catcher('admin_refresh')),
        1_000,
      ).unref()
      onClose('admin-store refresher', () => clearInterval(refresher))
    }

    // The recorder and what keeps its rows through an outage.
    let recovery: JournalRecovery | undefined
    const outage = await createOutageKit({
      env,
      warehouse,
      logger: log,
      onBackgroundError: backgroundErrors.report,
      runWorker: roles.has('worker'),
      journalStatus: () =>
        journal && recovery ? { status: journal.status(), recovery: recovery.progress() } : undefined,
      wakeJournal: () => recovery?.wake(),
    })
    onClose('spill stores', () => outage.close())
    const journal: UsageJournal | undefined =
      env.JOURNAL === 'on'
        ? createUsageJournal({
            dir: join(env.DATA_DIR, 'journal'),
            maxBytes: env.JOURNAL_MAX_BYTES,
            fsyncMs: env.JOURNAL_FSYNC_MS,
            logger: log,
          })
        : undefined
    if (journal) onClose('usage journal', () => journal.close())
    // Delivers what a previous run left in the journal, then what is parked
    // there while ClickHouse does not take batches (the journal is the local
    // outage store; the disk spool serves JOURNAL=off).
    recovery = journal
      ? startJournalRecovery({
          journal,
          insertBatch: outage.insertBatch,
          quarantine: outage.quarantine,
          logger: log,
          probe: () => warehouse.ping(),
          maxGroupRows: env.RECORDER_MAX_ROWS,
        })
      : undefined
    const recorder = createUsageRecorder({
      warehouse,
      // With the journal on, Redis only (when configured): what it does not take stays in the journal.
      spill: overrides.spill ?? (journal ? outage.redis : outage.sink),
      insertNeverSent,
      insertBatch: outage.insertBatch,
      maxRows: env.RECORDER_MAX_ROWS,
      flushMs: env.RECORDER_FLUSH_MS,
      insertTimeoutMs: env.CLICKHOUSE_INSERT_TIMEOUT_MS,
      logger: log,
      journal,
    })
    onClose('recorder', async () => {
      await recorder.close()
      // Rows the journal holds are delivered by the next start; the others are lost here, and counted.
      const { pendingRows, memoryOnlyRows } = recorder.stats()
      if (pendingRows - memoryOnlyRows > 0) {
        log.warn(
          { rows: pendingRows - memoryOnlyRows },
          'rows kept in the usage journal at shutdown: the next start delivers them',
        )
      }
      if (memoryOnlyRows > 0) {
        outage.rowsDropped.value += memoryOnlyRows
        log.error({ rows: memoryOnlyRows }, 'rows dropped at shutdown: no spill path took them')
      }
    })
    // The recovery stops before the recorder's last flush, as it always has.
    if (recovery) onClose('journal recovery', () => recovery?.stop())

    // What the gateway and the API share above the recorder.
    const budgets =
      overrides.budgets ??
      createBudgetEnforcer({ env, store, warehouse, log: log.child({ module: 'budgets' }) })
    onClose('budget enforcer', () => budgets.close())
    const rowFeed = createRowFeed({
      recorder,
      redisUrl: env.REDIS_URL,
      log: log.child({ module: 'row-feed' }),
    })
    registerRecorderMetrics(metrics, recorder)
    registerWarehouseMetrics(metrics, warehouse)
    registerOutageMetrics(metrics, outage)

    const core: Core = {
      env,
      roles,
      warehouse,
      store,
      recorder,
      rowFeed,
      budgets,
      outage,
      journal: journal && recovery ? { journal, recovery } : undefined,
      metrics,
      backgroundErrors,
      log,
      adminToken: env.ADMIN_TOKEN ?? `tma_${randomBytes(24).toString('base64url')}`,
      close: stopAll,
    }

    // Background jobs, per role.
    if (outage.worker) {
      outage.worker.start()
      onClose('replay worker', () => outage.stopWorker())
    }
    onClose('row feed', () => rowFeed.close())
    if (roles.has('api')) {
      const alerts = createAlertsService({
        env,
        warehouse,
        store,
        log: log.child({ job: 'alerts' }),
        reportError: backgroundErrors.report,
      })
      alerts.monitor.start()
      onClose('alert monitor', () => alerts.close())
    }
    if (roles.has('gateway') && env.DEMO) {
      // The demo's upstream: a fake LLM provider in process on a loopback port.
      const simulator = await createFakeUpstream()
      core.simulatedBaseUrl = `${simulator.url}/v1`
      onClose('simulated provider', () => simulator.close())
    }
    return core
  }
}

/** One process as server.ts runs it: the Core, its HTTP app, and the demo when DEMO=true. */
export interface Bootstrapped {
  core: Core
  app: FastifyInstance
  /** Call once listening: starts the demo's live traffic (DEMO=true with the gateway role). */
  listening(address: string, url: string): void
  /**
   * Stops the demo traffic, then HTTP (`closeHttp`: server.ts also ends idle
   * sockets), then the Core in reverse order of its start.
   */
  close(closeHttp?: () => Promise<void>): Promise<void>
}

export async function bootstrap(env: Env, opts: { logger: Logger }): Promise<Bootstrapped> {
  const core = await createCore(env, { logger: opts.logger })
  const demoSeed = env.DEMO && core.roles.has('gateway') ? await prepareDemo(core) : undefined
  const app = await buildApp(core, { loggerInstance: opts.logger })
  let demo: ReturnType<typeof startDemo> | undefined
  return {
    core,
    app,
    listening(address, url) {
      if (demoSeed) demo = startDemo(core, demoSeed, { address, url, gateway: true })
    },
    async close(closeHttp = () => app.close()) {
      await demo?.stop()
      await closeHttp()
      await core.close()
    },
  }
}
