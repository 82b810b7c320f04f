import { describe, expect, it } from 'vitest'
import { clusterize, compareVersions, loadMigrations, parseMigration, statementKind } from './migrations.ts'

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

/** The statements of clickhouse/*.sql, as migrate() runs them. */
const statements = async () => (await loadMigrations()).flatMap((m) => m.statements)
async function statement(start: string): Promise<string> {
  const found = (await statements()).filter((s) => s.startsWith(start))
  expect(found, start).toHaveLength(1)
  return found[0]!
}

describe('clusterize: every kind of statement the migrations use, on the statements themselves', () => {
  it('knows every kind in clickhouse/*.sql and refuses any other instead of passing it through', async () => {
    const kinds = new Set((await statements()).map(statementKind))
    expect([...kinds].sort()).toEqual(['add-column', 'create-table', 'create-view', 'modify-query'])
    for (const s of [
      'DROP TABLE IF EXISTS usage_5m',
      'INSERT INTO usage_5m SELECT * FROM requests',
      'CREATE MATERIALIZED VIEW IF NOT EXISTS v ENGINE = MergeTree ORDER BY x AS SELECT 1 FROM requests',
      'ALTER TABLE requests DROP COLUMN price_unknown',
      'RENAME TABLE usage_5m TO usage_5m_old',
    ])
      expect(() => clusterize(s, 'c1'), s).toThrow(/no clustered variant/)
    expect(() =>
      clusterize(
        'CREATE TABLE IF NOT EXISTS t (v UInt8) ENGINE = CollapsingMergeTree(sign) ORDER BY v',
        'c1',
      ),
    ).toThrow(/no replicated twin/)
  })

  it('makes every table replicated and every statement ON CLUSTER, with the replicated dedup window', async () => {
    for (const s of await statements()) {
      for (const c of clusterize(s, 'tm')) {
        expect(c).toMatch(/^(CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS|ALTER TABLE) \w+ ON CLUSTER tm\b/)
        if (/ENGINE = \w*MergeTree/.test(c))
          expect(c).toMatch(/ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\//)
        expect(c).not.toMatch(/non_replicated_deduplication_window/)
      }
    }
  })

  it('CREATE TABLE of a sharded table (requests): a replicated local table per shard, a Distributed table of the same name', async () => {
    const [local, dist, ...more] = clusterize(await statement('CREATE TABLE IF NOT EXISTS requests'), 'c1')
    expect(more).toEqual([])
    expect(local).toMatch(/^CREATE TABLE IF NOT EXISTS requests_local ON CLUSTER c1\n\(\n/)
    expect(local).toContain(
      "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/requests', '{replica}')\nPARTITION BY",
    )
    expect(local).toContain('SETTINGS replicated_deduplication_window = 100000, index_granularity = 8192')
    // The batch id shards: a replayed batch meets its first copy on the same shard and is dropped there.
    expect(dist).toBe(
      'CREATE TABLE IF NOT EXISTS requests ON CLUSTER c1 AS requests_local ENGINE = Distributed(c1, currentDatabase(), requests_local, cityHash64(batch_id))',
    )
  })

  it('CREATE TABLE ... AS another (usage_1h AS usage_5m): the local twin copies the local twin, under its own path', async () => {
    const [local, dist] = clusterize(await statement('CREATE TABLE IF NOT EXISTS usage_1h AS usage_5m'), 'c1')
    expect(local).toMatch(
      /^CREATE TABLE IF NOT EXISTS usage_1h_local ON CLUSTER c1 AS usage_5m_local\nENGINE = ReplicatedAggregatingMergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/usage_1h', '\{replica\}'\)\n/,
    )
    expect(dist).toBe(
      'CREATE TABLE IF NOT EXISTS usage_1h ON CLUSTER c1 AS usage_1h_local ENGINE = Distributed(c1, currentDatabase(), usage_1h_local, rand())',
    )
  })

  it('CREATE TABLE of a small table (teams): one replica set on every node, the version column kept, no Distributed table', async () => {
    const c = clusterize(await statement('CREATE TABLE IF NOT EXISTS teams'), 'c1')
    expect(c).toHaveLength(1)
    expect(c[0]).toMatch(/^CREATE TABLE IF NOT EXISTS teams ON CLUSTER c1\n/)
    expect(c[0]).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/teams', '{replica}', updated_at)",
    )
  })

  it('CREATE MATERIALIZED VIEW ... TO (the rollup views): written to the local rollup, reading the local raw table', async () => {
    const views = (await statements()).filter((s) => statementKind(s) === 'create-view')
    expect(views.length).toBeGreaterThanOrEqual(4)
    for (const v of views) {
      const [name, target] = /IF NOT EXISTS (\w+)\s+TO (\w+)/.exec(v)!.slice(1)
      const c = clusterize(v, 'c1')
      expect(c).toHaveLength(1)
      expect(c[0]).toMatch(
        new RegExp(`^CREATE MATERIALIZED VIEW IF NOT EXISTS ${name} ON CLUSTER c1 TO ${target}_local AS\n`),
      )
      expect(c[0]).toMatch(/\bFROM requests_local\b/)
      expect(c[0]).not.toMatch(/\bFROM requests\b/)
      // Only the table positions change: `requests` is also a column the view writes.
      expect(c[0]!.replace(/_local\b/g, '').replace(' ON CLUSTER c1', '')).toBe(v)
    }
  })

  it('ALTER TABLE ... ADD COLUMN on a sharded table: on the local tables with its codec, on the Distributed table without', async () => {
    const raw = await statement('ALTER TABLE requests ADD COLUMN IF NOT EXISTS reasoning_tokens')
    expect(clusterize(raw, 'c1')).toEqual([
      'ALTER TABLE requests_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS reasoning_tokens UInt32 DEFAULT 0 CODEC(T64, ZSTD(1)) AFTER cache_write_tokens',
      'ALTER TABLE requests ON CLUSTER c1 ADD COLUMN IF NOT EXISTS reasoning_tokens UInt32 DEFAULT 0 AFTER cache_write_tokens',
    ])
    const rollup = await statement('ALTER TABLE usage_5m ADD COLUMN IF NOT EXISTS unpriced')
    expect(clusterize(rollup, 'c1')).toEqual([
      'ALTER TABLE usage_5m_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER estimated',
      'ALTER TABLE usage_5m ON CLUSTER c1 ADD COLUMN IF NOT EXISTS unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER estimated',
    ])
  })

  it('ALTER TABLE ... ADD COLUMN on a small table (model_facades): once, on every node', async () => {
    expect(clusterize(await statement('ALTER TABLE model_facades ADD COLUMN'), 'c1')).toEqual([
      'ALTER TABLE model_facades ON CLUSTER c1 ADD COLUMN IF NOT EXISTS price_from_catalogue Bool DEFAULT false',
    ])
  })

  it("ALTER TABLE ... MODIFY QUERY (the rollup views): the view's new query reads the local raw table", async () => {
    const modify = await statement('ALTER TABLE usage_1d_mv MODIFY QUERY')
    const c = clusterize(modify, 'c1')
    expect(c).toHaveLength(1)
    expect(c[0]).toMatch(/^ALTER TABLE usage_1d_mv ON CLUSTER c1 MODIFY QUERY\n/)
    expect(c[0]).toMatch(/\bFROM requests_local\b/)
    expect(c[0]!.replace('_local', '').replace(' ON CLUSTER c1', '')).toBe(modify)
  })
})
