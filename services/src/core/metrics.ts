import { Counter, Gauge, type Registry } from 'prom-client'
import type { UsageRecorder } from './usage-recorder.ts'
import type { StatementKind, Warehouse } from './warehouse.ts'

/**
 * Statements this process sent to ClickHouse, by kind: what live mode, the
 * dashboards and the admin refresh cost the warehouse (docs/BENCHMARKS.md,
 * live). Read from the warehouse's plain counters at scrape time.
 */
export function registerWarehouseMetrics(registry: Registry, warehouse: Warehouse): void {
  const reported: Record<StatementKind, number> = { select: 0, insert: 0, command: 0 }
  new Counter({
    name: 'tokenmeter_clickhouse_queries_total',
    help: 'Statements sent to ClickHouse since start, by kind (select: queries and streams; insert; command: DDL and others)',
    labelNames: ['kind'],
    registers: [registry],
    collect(this: Counter<'kind'>) {
      const now = warehouse.statementCounts()
      for (const kind of Object.keys(reported) as StatementKind[]) {
        // A counter only moves up: add what was sent since the last scrape.
        this.inc({ kind }, now[kind] - reported[kind])
        reported[kind] = now[kind]
      }
    },
  })
}

/** Recorder counters, read at scrape time so the hot path only bumps plain numbers. */
export function registerRecorderMetrics(registry: Registry, recorder: UsageRecorder): void {
  const read = (pick: (s: ReturnType<UsageRecorder['stats']>) => number) =>
    function (this: Gauge) {
      this.set(pick(recorder.stats()))
    }
  new Gauge({
    name: 'tokenmeter_rows_recorded_total',
    help: 'Usage rows accepted by the recorder since start',
    registers: [registry],
    collect: read((s) => s.recorded),
  })
  new Gauge({
    name: 'tokenmeter_rows_inserted_total',
    help: 'Usage rows acknowledged by ClickHouse since start (live path)',
    registers: [registry],
    collect: read((s) => s.inserted),
  })
  new Gauge({
    name: 'tokenmeter_rows_spilled_total',
    help: 'Usage rows handed to the spill path since start',
    registers: [registry],
    collect: read((s) => s.spilled),
  })
  new Gauge({
    name: 'tokenmeter_recorder_pending_rows',
    help: 'Rows accepted but not yet inserted or spilled',
    registers: [registry],
    collect: read((s) => s.pendingRows),
  })
  new Gauge({
    name: 'tokenmeter_recorder_failed_flushes_total',
    help: 'Batch inserts that failed since start',
    registers: [registry],
    collect: read((s) => s.failedFlushes),
  })
}
