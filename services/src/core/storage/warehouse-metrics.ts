import { Counter, type Registry } from 'prom-client'
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
