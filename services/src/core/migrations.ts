import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Warehouse } from './warehouse.ts'

/** Oldest ClickHouse server we support: the 25.8 LTS line (JSON type, stable dedup settings). */
export const MIN_CLICKHOUSE_VERSION = '25.8'

export const MIGRATIONS_DIR = new URL('../../../clickhouse/', import.meta.url).pathname

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
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migrations must be numbered 0001.. without gaps; found ${m.version}`)
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
  const ddl = (sql: string) => wh.command(opts.cluster ? clusterize(sql, opts.cluster) : sql)
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
  const [row] = await wh.query<{ q: string }>(
    "SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = 'requests'",
  )
  if (row?.q.includes(`TTL ${ttl}`)) return
  const onCluster = cluster ? ` ON CLUSTER ${cluster}` : ''
  await wh.command(
    `ALTER TABLE requests${onCluster} MODIFY TTL toDateTime(started_at) + INTERVAL ${Math.trunc(days)} DAY`,
  )
}

/**
 * The clustered variant of a migration statement, for CLICKHOUSE_CLUSTER:
 * DDL runs ON CLUSTER, every *MergeTree becomes its Replicated* twin keyed by
 * shard and table, and the dedup window moves to its replicated setting (so a
 * replayed batch is still dropped on every replica and in every rollup).
 * Migrations stay written once, for the single-node case.
 */
export function clusterize(sql: string, cluster: string): string {
  const head = /^(CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS )([A-Za-z0-9_]+)/.exec(sql)
  if (!head) return sql.replace(/^ALTER TABLE ([A-Za-z0-9_]+)/, `ALTER TABLE $1 ON CLUSTER ${cluster}`)
  const table = head[2]!
  return `${head[1]}${table} ON CLUSTER ${cluster}${sql.slice(head[0].length)}`
    .replace(
      /ENGINE = (Replacing|Aggregating|Summing)?MergeTree(?:\(([^)]*)\))?/,
      (_m, kind: string | undefined, args: string | undefined) =>
        `ENGINE = Replicated${kind ?? ''}MergeTree('/clickhouse/tables/{shard}/{database}/${table}', '{replica}'${args ? `, ${args}` : ''})`,
    )
    .replace(/non_replicated_deduplication_window/g, 'replicated_deduplication_window')
}
