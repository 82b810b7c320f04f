import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Warehouse } from './warehouse.ts'

/** Oldest ClickHouse server we support: the 25.8 LTS line (JSON type, stable dedup settings). */
export const MIN_CLICKHOUSE_VERSION = '25.8'

export const MIGRATIONS_DIR = new URL('../../../../clickhouse/', import.meta.url).pathname

export interface Migration {
  version: number
  name: string
  statements: string[]
}

/** Splits a migration file into statements; comments are dropped, `;` ends a statement. */
export function parseMigration(fileName: string, sql: string): Migration {
  const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(fileName)
  if (!match) throw new Error(`migration file ${fileName} must be named NNNN_name.sql`)
  const statements = sql
    .replace(/--.*$/gm, '')
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
  return { version: Number(match[1]), name: match[2]!, statements }
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  const migrations = await Promise.all(
    files.map(async (f) => parseMigration(f, await readFile(join(dir, f), 'utf8'))),
  )
  // Numbers are reserved per change and may land out of order (0008 before
  // 0007); each is applied once by number, so only a duplicate is an error.
  migrations.forEach((m, i) => {
    const prev = migrations[i - 1]
    if (prev && prev.version === m.version)
      throw new Error(`two migrations are numbered ${m.version}: ${prev.name} and ${m.name}; renumber one`)
  })
  return migrations
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

export async function assertSupportedVersion(wh: Warehouse): Promise<string> {
  const [row] = await wh.query<{ v: string }>('SELECT version() AS v')
  const version = row?.v ?? '0'
  if (compareVersions(version, MIN_CLICKHOUSE_VERSION) < 0) {
    throw new Error(
      `ClickHouse ${version} is too old: Tokenmeter needs ${MIN_CLICKHOUSE_VERSION} LTS or newer ` +
        '(query parameters, insert deduplication in materialized views). Upgrade the server or unset CLICKHOUSE_URL to use the embedded engine.',
    )
  }
  return version
}

/**
 * Applies the migrations not yet recorded. Every statement is idempotent
 * (IF NOT EXISTS), so two processes racing through the same list both end in
 * the same schema, and a crash between a statement and its record only means
 * the statement runs again next time.
 */
export async function migrate(
  wh: Warehouse,
  opts: { retentionDays: number; dir?: string; cluster?: string },
): Promise<{ applied: number[]; version: string }> {
  const version = await assertSupportedVersion(wh)
  const ddl = async (sql: string) => {
    for (const statement of opts.cluster ? clusterize(sql, opts.cluster) : [sql]) await wh.command(statement)
  }
  await ddl(`CREATE TABLE IF NOT EXISTS tokenmeter_migrations
    (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
    ENGINE = ReplacingMergeTree ORDER BY version`)
  const done = new Set(
    (await wh.query<{ version: number }>('SELECT DISTINCT version FROM tokenmeter_migrations')).map((r) =>
      Number(r.version),
    ),
  )
  const applied: number[] = []
  for (const m of await loadMigrations(opts.dir)) {
    if (done.has(m.version)) continue
    for (const statement of m.statements) await ddl(statement)
    await wh.insertRows('tokenmeter_migrations', [{ version: m.version, name: m.name }])
    applied.push(m.version)
  }
  await applyRetention(wh, opts.retentionDays, opts.cluster)
  return { applied, version }
}

/** Retention is configuration, not schema: set on start, only when it changed (a TTL change rewrites parts). */
async function applyRetention(wh: Warehouse, days: number, cluster?: string): Promise<void> {
  const ttl = `toDateTime(started_at) + toIntervalDay(${Math.trunc(days)})`
  const table = cluster ? local('requests') : 'requests'
  const [row] = await wh.query<{ q: string }>(
    'SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = {table:String}',
    { table },
  )
  if (row?.q.includes(`TTL ${ttl}`)) return
  const onCluster = cluster ? ` ON CLUSTER ${cluster}` : ''
  await wh.command(
    `ALTER TABLE ${table}${onCluster} MODIFY TTL toDateTime(started_at) + INTERVAL ${Math.trunc(days)} DAY`,
  )
}

/**
 * Usage tables are sharded across a cluster; everything else (admin state,
 * alerts, the migration log) is small and kept whole on every node. The
 * sharding key of `requests` is the batch id: a batch lands whole on one
 * shard, so a replay with the same insert_deduplication_token meets the same
 * block there and is dropped, in the raw table and in the rollups its
 * materialized views feed on that shard. Rollups are written only by those
 * local views; their Distributed tables are for reading (sum and
 * quantileTDigestMerge over shards are exact / mergeable).
 */
const SHARDED_TABLES: Record<string, string> = {
  requests: 'cityHash64(batch_id)',
  usage_5m: 'rand()',
  usage_1h: 'rand()',
  usage_1d: 'rand()',
  latency_1d: 'rand()',
}

const local = (table: string) => (table in SHARDED_TABLES ? `${table}_local` : table)

/**
 * The kinds of statement the migrations use, each with its clustered variant
 * below. Anything else (DROP, INSERT ... SELECT backfills, a view without TO)
 * is refused rather than passed through unchanged: on a cluster it would run
 * on one node only, or against the Distributed table, and nobody would notice.
 */
export type StatementKind = 'create-table' | 'create-view' | 'add-column' | 'modify-query'

export function statementKind(sql: string): StatementKind {
  if (/^CREATE TABLE IF NOT EXISTS \w+\s/.test(sql)) return 'create-table'
  if (/^CREATE MATERIALIZED VIEW IF NOT EXISTS \w+\s+TO \w+\s/.test(sql)) return 'create-view'
  if (/^ALTER TABLE \w+\s+ADD COLUMN\s/.test(sql)) return 'add-column'
  if (/^ALTER TABLE \w+\s+MODIFY QUERY\s/.test(sql)) return 'modify-query'
  throw new Error(
    `no clustered variant for "${sql.slice(0, 60)}…": teach clusterize this kind of statement (with a test in migrations.test.ts) before a migration uses it`,
  )
}

/** `FROM t` read from the local table of a sharded t: on each node, a view sees that node's rows. */
const fromLocal = (text: string) =>
  text.replace(/\bFROM ([A-Za-z0-9_]+)/g, (_m, name: string) => `FROM ${local(name)}`)

/**
 * The clustered variant of a migration statement, for CLICKHOUSE_CLUSTER:
 * DDL runs ON CLUSTER; every *MergeTree becomes its Replicated* twin; a
 * sharded table T becomes T_local plus a Distributed T with the same name the
 * queries already use, and views and ALTERs address the local tables. The dedup
 * window moves to its replicated setting. Migrations stay written once, for
 * the single-node case; each kind of statement they use is rewritten by its
 * own case here and checked on the real migrations in migrations.test.ts.
 */
export function clusterize(sql: string, cluster: string): string[] {
  const kind = statementKind(sql)
  const name = /^(?:CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS|ALTER TABLE) (\w+)/.exec(sql)![1]!
  switch (kind) {
    case 'add-column': {
      const rest = sql.slice(`ALTER TABLE ${name}`.length)
      const onLocal = `ALTER TABLE ${local(name)} ON CLUSTER ${cluster}${rest}`
      if (!(name in SHARDED_TABLES)) return [onLocal]
      // The Distributed table keeps its own column list: the column is added there
      // too (without a codec, which only matters where data is stored).
      const plain = rest.replace(/\s+CODEC\((?:[^()]|\([^()]*\))*\)/g, '')
      return [onLocal, `ALTER TABLE ${name} ON CLUSTER ${cluster}${plain}`]
    }
    case 'modify-query':
      // A view's new query reads the local table, as its CREATE did.
      return [
        `ALTER TABLE ${name} ON CLUSTER ${cluster}${fromLocal(sql.slice(`ALTER TABLE ${name}`.length))}`,
      ]
    case 'create-view': {
      const head = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${name}`
      // The view writes to the local rollup of its node (TO t -> TO t_local).
      const rest = sql
        .slice(head.length)
        .replace(/^(\s+TO )(\w+)/, (_m, to: string, target: string) => to + local(target))
      return [`${head} ON CLUSTER ${cluster}${fromLocal(rest)}`]
    }
    case 'create-table': {
      const head = 'CREATE TABLE IF NOT EXISTS '
      const sharded = name in SHARDED_TABLES
      // `CREATE TABLE t AS other`: the local twin copies the other's local twin.
      const rest = sql
        .slice(head.length + name.length)
        .replace(/^(\s+AS )(\w+)/, (_m, as: string, other: string) => as + local(other))
      // Small tables: one replica set spanning every node ("all" instead of the shard macro).
      const path = `/clickhouse/tables/${sharded ? '{shard}' : 'all'}/{database}/${name}`
      const created = `${head}${local(name)} ON CLUSTER ${cluster}${rest}`
        .replace(
          /ENGINE = (Replacing|Aggregating|Summing)?MergeTree(?:\(([^)]*)\))?/,
          (_m, engine: string | undefined, args: string | undefined) =>
            `ENGINE = Replicated${engine ?? ''}MergeTree('${path}', '{replica}'${args ? `, ${args}` : ''})`,
        )
        .replace(/non_replicated_deduplication_window/g, 'replicated_deduplication_window')
      // Another engine (Collapsing*, Memory, ...) would be created unreplicated on every node.
      if (!created.includes('ENGINE = Replicated'))
        throw new Error(
          `no replicated twin for the engine of ${name}; teach clusterize before a migration uses it`,
        )
      if (!sharded) return [created]
      return [
        created,
        `${head}${name} ON CLUSTER ${cluster} AS ${local(name)} ` +
          `ENGINE = Distributed(${cluster}, currentDatabase(), ${local(name)}, ${SHARDED_TABLES[name]})`,
      ]
    }
  }
}
