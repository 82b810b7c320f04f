import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterize, loadMigrations, migrate } from '../services/src/core/storage/migrations.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

let stack: TestStack
beforeAll(async () => {
  stack = await startTestStack()
})
afterAll(async () => stack?.close())

describe('migrations', () => {
  it('records every migration once and is safe to run again, twice at once', async () => {
    const wh = stack.core.warehouse
    const again = await Promise.all([
      migrate(wh, { retentionDays: 400 }),
      migrate(wh, { retentionDays: 400 }),
    ])
    expect(again.map((r) => r.applied)).toEqual([[], []])
    const rows = await wh.query<{ version: number; n: string }>(
      'SELECT version, count() AS n FROM tokenmeter_migrations FINAL GROUP BY version ORDER BY version',
    )
    expect(rows.length).toBeGreaterThanOrEqual(4)
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true)
  })

  it('applies the configured raw retention', async () => {
    await migrate(stack.core.warehouse, { retentionDays: 30 })
    const [row] = await stack.core.warehouse.query<{ q: string }>(
      "SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = 'requests'",
    )
    expect(row?.q).toContain('toIntervalDay(30)')
  })

  it('has a clustered variant of every migration that the ClickHouse parser accepts', async () => {
    // No cluster or Keeper runs here, so the clustered DDL is parsed by the real
    // engine (EXPLAIN AST) rather than applied.
    let parsed = 0
    for (const m of await loadMigrations()) {
      for (const s of m.statements) {
        for (const c of clusterize(s, 'tokenmeter')) {
          await stack.core.warehouse.query(`EXPLAIN AST ${c}`)
          parsed++
        }
      }
    }
    expect(parsed).toBeGreaterThan(10)
    await expect(stack.core.warehouse.query('EXPLAIN AST CREATE TABLE x ON CLUSTER')).rejects.toThrow()
  })
})
