import { describe, expect, it } from 'vitest'
import { clusterize, compareVersions, loadMigrations, parseMigration } from './migrations.ts'

describe('parseMigration', () => {
  it('drops comments and splits statements', () => {
    const m = parseMigration(
      '0007_x.sql',
      '-- a; comment\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;',
    )
    expect(m).toEqual({
      version: 7,
      name: 'x',
      statements: ['CREATE TABLE a (x UInt8) ENGINE = Memory', 'SELECT 1'],
    })
  })
  it('refuses badly named files', () => {
    expect(() => parseMigration('7_x.sql', '')).toThrow(/NNNN_name/)
  })
})

describe('compareVersions', () => {
  it('orders dotted versions numerically', () => {
    expect(compareVersions('25.8.1.5', '25.8')).toBeGreaterThan(0)
    expect(compareVersions('24.12', '25.8')).toBeLessThan(0)
    expect(compareVersions('25.10', '25.8')).toBeGreaterThan(0)
  })
})

describe('clusterize', () => {
  it('makes every table replicated and ON CLUSTER, with the replicated dedup window', async () => {
    for (const m of await loadMigrations()) {
      for (const s of m.statements) {
        for (const c of clusterize(s, 'tm')) {
          if (/^CREATE|^ALTER/.test(s)) expect(c).toMatch(/ON CLUSTER tm/)
          if (/ENGINE = \w*MergeTree/.test(c))
            expect(c).toMatch(/ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\//)
          expect(c).not.toMatch(/non_replicated_deduplication_window/)
        }
      }
    }
  })

  it('shards usage tables behind Distributed tables of the same name, views on the local tables', () => {
    const [local, dist] = clusterize(
      'CREATE TABLE IF NOT EXISTS requests (batch_id String) ENGINE = MergeTree ORDER BY batch_id',
      'c1',
    )
    expect(local).toContain(
      "requests_local ON CLUSTER c1 (batch_id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/requests', '{replica}')",
    )
    expect(dist).toBe(
      'CREATE TABLE IF NOT EXISTS requests ON CLUSTER c1 AS requests_local ENGINE = Distributed(c1, currentDatabase(), requests_local, cityHash64(batch_id))',
    )
    const [view] = clusterize(
      'CREATE MATERIALIZED VIEW IF NOT EXISTS usage_5m_mv TO usage_5m AS SELECT count() AS requests FROM requests',
      'c1',
    )
    expect(view).toBe(
      'CREATE MATERIALIZED VIEW IF NOT EXISTS usage_5m_mv ON CLUSTER c1 TO usage_5m_local AS SELECT count() AS requests FROM requests_local',
    )
  })

  it('keeps small tables whole on every node, engine arguments after the replication path', () => {
    const c = clusterize(
      'CREATE TABLE IF NOT EXISTS t (v UInt8) ENGINE = ReplacingMergeTree(updated_at) ORDER BY v',
      'c1',
    )
    expect(c).toEqual([
      "CREATE TABLE IF NOT EXISTS t ON CLUSTER c1 (v UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/t', '{replica}', updated_at) ORDER BY v",
    ])
  })
})

describe('clusterize ALTER', () => {
  it('adds a column to a sharded table locally and to its Distributed table, without the codec there', () => {
    expect(
      clusterize(
        'ALTER TABLE requests ADD COLUMN IF NOT EXISTS r UInt32 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER x',
        'c1',
      ),
    ).toEqual([
      'ALTER TABLE requests_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS r UInt32 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER x',
      'ALTER TABLE requests ON CLUSTER c1 ADD COLUMN IF NOT EXISTS r UInt32 DEFAULT 0 AFTER x',
    ])
  })
  it("points a view's new query at the local table", () => {
    expect(
      clusterize('ALTER TABLE usage_5m_mv MODIFY QUERY\nSELECT count() AS requests\nFROM requests', 'c1'),
    ).toEqual([
      'ALTER TABLE usage_5m_mv ON CLUSTER c1 MODIFY QUERY\nSELECT count() AS requests\nFROM requests_local',
    ])
  })
})
