import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import {
  type ClickHouseClient,
  ClickHouseError,
  ClickHouseLogLevel,
  createClient,
  parseError,
} from '@clickhouse/client'
import { isAlive, isMissingFile } from './local-files.ts'

export type QueryParams = Record<string, unknown>

/** What a statement sent to ClickHouse was: a read (query or stream), an insert, or DDL and other commands. */
export type StatementKind = 'select' | 'insert' | 'command'

/**
 * The one door to ClickHouse. It exists for two reasons:
 * - Embedded chdb applies `clickhouse_settings` as session-wide SET statements,
 *   so a setting given to one call leaks into every later call (FACTS.md).
 *   Nothing here passes per-call settings that way: insert settings ride in the
 *   INSERT's own SETTINGS clause, which is scoped to that statement in both modes.
 * - Callers never build SQL from values: every value is a `{name:Type}` param.
 */
export interface Warehouse {
  readonly mode: 'embedded' | 'server'
  readonly client: ClickHouseClient
  /** Rows as JSONEachRow; `dedupToken` makes a repeat of the same batch a no-op everywhere. */
  insertRows(
    table: string,
    rows: readonly object[],
    opts?: { dedupToken?: string; timeoutMs?: number; encoded?: EncodedRows },
  ): Promise<void>
  query<T = Record<string, unknown>>(sql: string, params?: QueryParams, signal?: AbortSignal): Promise<T[]>
  /** Streams the result in the given format (CSVWithNames, JSONEachRow...) without buffering it. */
  stream(
    sql: string,
    params: QueryParams,
    format: 'CSVWithNames' | 'JSONEachRow',
  ): Promise<AsyncIterable<string>>
  command(sql: string, params?: QueryParams): Promise<void>
  /**
   * Statements sent since start, by kind (counted when sent, failed ones
   * included): `tokenmeter_clickhouse_queries_total{kind}` and the live
   * benchmark read it. Pings are not counted.
   */
  statementCounts(): Readonly<Record<StatementKind, number>>
  /**
   * Inserts and commands finished (succeeded or failed) since start: a read
   * that started before the latest one may not have seen its rows. Reused
   * query answers are keyed by it (api/inflight.ts).
   */
  writesFinished(): number
  /** Whether ClickHouse answers; never throws (false when it does not). */
  ping(): Promise<boolean>
  close(): Promise<void>
}

export interface WarehouseOptions {
  url?: string
  username?: string
  password?: string
  database?: string
  /** Embedded engine's data directory (ignored when url is set). */
  path?: string
  /** Embedded engine only: `os_thread_priority` (nice) of the threads running an insert. */
  insertNice?: number
  requestTimeoutMs?: number
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/
const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const DEDUP_TOKEN = /^[A-Za-z0-9_-]{1,128}$/

/**
 * `rows` already in JSONCompactEachRow under these columns (one `[...]` line
 * per row, in order): the usage journal writes each row in this form once,
 * and the insert sends those bytes as they are instead of serialising the
 * rows a second time (core/usage/usage-journal.ts).
 */
export interface EncodedRows {
  columns: string[]
  body: Buffer
}

/**
 * Rows with one shape (every usage batch) go as JSONCompactEachRow with the
 * column list in the INSERT: half the bytes of JSONEachRow and about half the
 * serialisation time (docs/BENCHMARKS.md, ingest). Rows whose keys differ go
 * as JSONEachRow, where a missing key means the column default; a compact row
 * says the same with null (input_format_null_as_default), so both agree.
 */
export function encodeRows(rows: readonly object[]): {
  columns: string[]
  format: 'JSONCompactEachRow' | 'JSONEachRow'
  body: string
} {
  const columns = Object.keys(rows[0]!)
  let uniform = columns.every((c) => COLUMN_NAME.test(c))
  let body = ''
  if (uniform) {
    const values: unknown[] = new Array(columns.length)
    for (const row of rows) {
      const r = row as Record<string, unknown>
      let keys = 0
      for (const _ in r) keys++
      if (keys !== columns.length) {
        uniform = false
        break
      }
      // Same count, other keys (rows with different optional fields): not one shape.
      for (let i = 0; i < columns.length; i++) {
        const v = r[columns[i]!]
        if (v === undefined && !(columns[i]! in r)) uniform = false
        values[i] = v
      }
      if (!uniform) break
      body += `${JSON.stringify(values)}\n`
    }
  }
  if (uniform) return { columns, format: 'JSONCompactEachRow', body }
  body = ''
  for (const row of rows) body += `${JSON.stringify(row)}\n`
  return { columns: [], format: 'JSONEachRow', body }
}

/** The part of chdb's connection we use beyond the client: its zero-copy raw insert. */
interface ChdbConnection {
  chdb: {
    rawInsert(params: {
      table: string
      columns: string[] | undefined
      settings: Record<string, string | number>
      format: 'JSONCompactEachRow' | 'JSONEachRow'
      values: Buffer
      timeout?: number
    }): Promise<unknown>
  }
}

/**
 * The embedded engine (~560 MB libchdb) is loaded only in embedded mode, so
 * server-mode processes don't pay its memory and start-up time.
 */
function embeddedConnection(path: string): ChdbConnection {
  const { createChdbConnection } = createRequire(import.meta.url)('chdb/connection') as {
    createChdbConnection: (o: { path: string }) => ChdbConnection
  }
  try {
    return createChdbConnection({ path })
  } catch (err) {
    // The engine locks its directory and says so only on stderr: a second
    // process on the same DATA_DIR would stop with a bare "Failed to create
    // connection". Its `status` file names the holder.
    const holder = engineHolder(path)
    if (holder !== undefined) {
      throw new Error(
        `${path} is in use by another process (pid ${holder}); the embedded ClickHouse engine serves one process per data directory. ` +
          'Stop that process, give this one its own DATA_DIR, or share a ClickHouse server between processes (CLICKHOUSE_URL).',
        { cause: err },
      )
    }
    throw err
  }
}

/** The live process other than this one that the engine's `status` file names, if any. */
function engineHolder(path: string): number | undefined {
  let status: string
  try {
    status = readFileSync(join(path, 'status'), 'utf8')
  } catch (err) {
    if (isMissingFile(err)) return undefined
    throw err
  }
  const pid = Number(/^PID: (\d+)/m.exec(status)?.[1])
  return pid > 0 && pid !== process.pid && isAlive(pid) ? pid : undefined
}

export function createWarehouse(opts: WarehouseOptions): Warehouse {
  const mode = opts.url ? 'server' : 'embedded'
  const chdb = opts.url ? undefined : embeddedConnection(opts.path ?? './data/clickhouse')
  const client = opts.url
    ? createClient({
        url: opts.url,
        username: opts.username,
        password: opts.password,
        database: opts.database,
        request_timeout: opts.requestTimeoutMs ?? 30_000,
        // Fail fast instead of keeping sockets to a server that went away.
        keep_alive: { enabled: true, idle_socket_ttl: 2_500 },
        clickhouse_settings: { date_time_input_format: 'best_effort' },
        // Failures are ours to report (recorder, spill, API errors) in our JSON
        // logs; the client's own multi-line text logger would duplicate them.
        log: { level: ClickHouseLogLevel.OFF },
      })
    : createClient({ connection: chdb } as never)
  const counts: Record<StatementKind, number> = { select: 0, insert: 0, command: 0 }
  let writesFinished = 0

  return {
    mode,
    client,
    async insertRows(table, rows, { dedupToken, timeoutMs, encoded } = {}) {
      if (rows.length === 0) return
      if (!TABLE_NAME.test(table)) throw new Error(`invalid table name ${table}`)
      if (dedupToken !== undefined && !DEDUP_TOKEN.test(dedupToken)) throw new Error('invalid dedup token')
      counts.insert++
      try {
        // An explicit empty token keeps a plain insert plain even on a session
        // where some earlier statement left a token behind.
        const settings = {
          insert_deduplication_token: dedupToken ?? '',
          deduplicate_blocks_in_dependent_materialized_views: 1,
          async_insert: 0,
          // The rollup views of `requests` run side by side instead of one after another.
          parallel_view_processing: 1,
          // Embedded: insert threads yield the shared cores to the gateway's event loop.
          ...(chdb && opts.insertNice ? { os_thread_priority: opts.insertNice } : {}),
        }
        const { columns, format, body } = encoded
          ? { ...encoded, format: 'JSONCompactEachRow' as const }
          : encodeRows(rows)
        if (chdb) {
          // The client's exec would glue the body onto the SQL text and hand the
          // engine a 25 MB JS string per 50,000 rows, converted on the event
          // loop; the raw insert passes the bytes as they are and the engine
          // parses them on its own threads (docs/BENCHMARKS.md, ingest).
          await chdb.chdb
            .rawInsert({
              table,
              columns: columns.length > 0 ? columns : undefined,
              settings,
              format,
              values: typeof body === 'string' ? Buffer.from(body) : body,
              timeout: timeoutMs,
            })
            .catch((err: unknown) => {
              // Same error shape as the client (`code`), for the failure classifier.
              throw parseError(err as Error)
            })
          return
        }
        const abort = timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined
        const clause = Object.entries(settings)
          .map(([k, v]) => `${k} = ${typeof v === 'string' ? `'${v}'` : v}`)
          .join(', ')
        const list = columns.length > 0 ? ` (${columns.join(', ')})` : ''
        const result = await client.exec({
          query: `INSERT INTO ${table}${list} SETTINGS ${clause} FORMAT ${format}`,
          values: typeof body === 'string' ? body : body.toString('utf8'),
          abort_signal: abort,
        } as never)
        // Over HTTP the response stream must be drained or the socket is kept busy.
        result.stream?.resume?.()
      } finally {
        writesFinished++
      }
    },
    async query<T>(sql: string, params: QueryParams = {}, signal?: AbortSignal) {
      counts.select++
      const rs = await client.query({
        query: sql,
        query_params: params,
        format: 'JSONEachRow',
        abort_signal: signal,
      })
      return (await rs.json()) as T[]
    },
    async stream(sql, params, format) {
      counts.select++
      const rs = await client.query({ query: sql, query_params: params, format })
      return (async function* () {
        for await (const rows of rs.stream()) {
          for (const row of rows as { text: string }[]) yield `${row.text}\n`
        }
      })()
    },
    async command(sql, params = {}) {
      counts.command++
      try {
        await client.command({ query: sql, query_params: params })
      } finally {
        writesFinished++
      }
    },
    statementCounts: () => ({ ...counts }),
    writesFinished: () => writesFinished,
    async ping() {
      try {
        return (await client.ping()).success
      } catch {
        // Unreachable is the answer a probe asks for, not an event: the inserts
        // and queries that fail meanwhile report the cause.
        return false
      }
    },
    async close() {
      await client.close()
    },
  }
}

export { ClickHouseError }
