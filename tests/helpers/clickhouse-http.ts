import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Session } from 'chdb'

/**
 * A test-only ClickHouse HTTP endpoint over the embedded engine, so the
 * product's server mode (`createWarehouse({ url })`, the official
 * @clickhouse/client over real sockets) can be exercised where no
 * clickhouse-server runs. It speaks the part of the HTTP interface that
 * client uses: `GET /ping`, `POST /?query=...` with the data in the body,
 * `POST /` with the SQL in the body, `param_<name>` query parameters
 * (escaped text form), errors as `Code: N. DB::Exception: ...` with the
 * X-ClickHouse-Exception-Code header, and X-ClickHouse-Summary/Query-Id/
 * Format/Timezone headers on success.
 *
 * Not covered (the product does not use them): compression, sessions,
 * per-request settings other than those carried in the SQL (URL settings are
 * accepted and ignored, except date_time_input_format which is set once),
 * authentication (any user is accepted).
 *
 * Fault injection: stop() closes the port and cuts open sockets (connection
 * refused until start()); `loseResponses(n)` commits the next n INSERTs and
 * then destroys the socket before any response byte is sent; `failInserts(n)`
 * answers the next n INSERTs with a 503 without running them.
 */
export interface ClickHouseHttp {
  url: string
  port: number
  readonly running: boolean
  start(): Promise<void>
  stop(): Promise<void>
  /** The next n INSERTs (into `table` only, when given) commit, then their socket is cut before any answer. */
  loseResponses(n: number, table?: string): void
  failInserts(n: number): void
  /** Counters for assertions about what really reached the engine. */
  stats: {
    inserts: number
    /** INSERTs into the raw usage table (`requests`): what the recorder and the replays send. */
    usageInserts: number
    lostResponses: number
    failedInserts: number
    queries: number
  }
  /** Runs SQL directly on the engine (for test assertions), JSONEachRow out. */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>
  close(): Promise<void>
}

/** clickhouse-js sends scalar param values in ClickHouse's escaped text form; chdb's binder escapes again. */
function unescapeParam(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) =>
    c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c === '0' ? '\0' : c === 'b' ? '\b' : c,
  )
}

/**
 * Composite params (Array(...)) arrive as SQL literals: `['a','b\'c']`.
 * chdb's binder takes JS arrays and writes that same literal form itself, so
 * the literal is turned back into a JS array (strings and numbers suffice
 * for the product's filters).
 */
function parseArrayLiteral(v: string): unknown[] {
  const json = v.replace(/'((?:[^'\\]|\\.)*)'/g, (_m, inner: string) => JSON.stringify(unescapeParam(inner)))
  return JSON.parse(json) as unknown[]
}

function paramTypes(sql: string): Map<string, string> {
  const types = new Map<string, string>()
  for (const m of sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^}]+)\}/g)) types.set(m[1]!, m[2]!.trim())
  return types
}

export async function startClickHouseHttp(opts: { dir?: string } = {}): Promise<ClickHouseHttp> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'tokenmeter-chhttp-'))
  const session = new Session(dir)
  await session.queryAsync("SET date_time_input_format = 'best_effort'")
  let port = 0
  let server: Server | undefined
  const sockets = new Set<Socket>()
  let lose = 0
  let loseTable: string | undefined
  let fail = 0
  const stats = { inserts: 0, usageInserts: 0, lostResponses: 0, failedInserts: 0, queries: 0 }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (
      url.pathname === '/ping' ||
      (req.method === 'GET' && url.pathname === '/' && !url.searchParams.has('query'))
    ) {
      res.end('Ok.\n')
      return
    }
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    const inUrl = url.searchParams.get('query')
    const sql = inUrl !== null ? `${inUrl}\n${body}` : body
    const params: Record<string, unknown> = {}
    const types = paramTypes(sql)
    for (const [k, v] of url.searchParams) {
      if (!k.startsWith('param_')) continue
      const name = k.slice(6)
      params[name] =
        v === '\\N' ? null : /^Array\(/.test(types.get(name) ?? '') ? parseArrayLiteral(v) : unescapeParam(v)
    }
    const queryId = url.searchParams.get('query_id') ?? randomUUID()
    const isInsert = /^\s*INSERT\b/i.test(sql)
    if (isInsert && fail > 0) {
      fail--
      stats.failedInserts++
      res.writeHead(503, { 'X-ClickHouse-Exception-Code': '210' })
      res.end('Code: 210. DB::NetException: injected failure (test endpoint). (NETWORK_ERROR)\n')
      return
    }
    try {
      const format = /\bFORMAT\s+(\w+)\s*$/i.exec(inUrl ?? body)?.[1] ?? 'TabSeparated'
      const result =
        Object.keys(params).length > 0
          ? await session.queryBindAsync(sql, params, { format })
          : await session.queryAsync(sql, { format })
      if (isInsert) {
        stats.inserts++
        if (/^\s*INSERT\s+INTO\s+`?requests\b/i.test(sql)) stats.usageInserts++
        if (
          lose > 0 &&
          (loseTable === undefined || new RegExp(`^\\s*INSERT\\s+INTO\\s+\`?${loseTable}\\b`, 'i').test(sql))
        ) {
          lose--
          stats.lostResponses++
          // Committed, and the client never hears about it.
          req.socket.destroy()
          return
        }
      } else stats.queries++
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=UTF-8',
        'X-ClickHouse-Query-Id': queryId,
        'X-ClickHouse-Format': format,
        'X-ClickHouse-Timezone': 'UTC',
        'X-ClickHouse-Summary': JSON.stringify({
          read_rows: String(result.rowsRead ?? 0),
          read_bytes: String(result.bytesRead ?? 0),
          written_rows: '0',
          written_bytes: '0',
          total_rows_to_read: '0',
          result_rows: '0',
          result_bytes: '0',
          elapsed_ns: String(Math.round((result.elapsed ?? 0) * 1e9)),
        }),
      })
      res.end(Buffer.from(result.bytes()))
    } catch (err) {
      const message = (err as Error).message ?? String(err)
      const code = /Code: (\d+)/.exec(message)?.[1] ?? '1002'
      res.writeHead(/Code: 62\b/.test(message) ? 400 : 500, { 'X-ClickHouse-Exception-Code': code })
      res.end(message.includes('DB::Exception') ? message : `Code: ${code}. DB::Exception: ${message}`)
    }
  }

  async function start() {
    if (server) return
    const srv = createServer((req, res) => {
      handle(req, res).catch((err) => {
        if (!res.headersSent) res.writeHead(500)
        res.end(String(err))
      })
    })
    srv.keepAliveTimeout = 10_000
    srv.on('connection', (s) => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    })
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(port, '127.0.0.1', () => resolve())
    })
    port = (srv.address() as { port: number }).port
    server = srv
  }

  async function stop() {
    const srv = server
    if (!srv) return
    server = undefined
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()))
    for (const s of sockets) s.destroy()
    await closed
  }

  await start()
  return {
    get url() {
      return `http://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    get running() {
      return server !== undefined
    },
    start,
    stop,
    loseResponses(n, table) {
      lose = n
      loseTable = table
    },
    failInserts(n) {
      fail = n
    },
    stats,
    async query<T>(sql: string) {
      const r = await session.queryAsync(sql, { format: 'JSONEachRow' })
      return r
        .text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as T)
    },
    async close() {
      await stop()
      session.close()
      if (!opts.dir) rmSync(dir, { recursive: true, force: true })
    },
  }
}
