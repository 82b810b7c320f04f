import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWarehouse, type Warehouse } from '../services/src/core/storage/warehouse.ts'
import { insertHistory, makeRow, type Org, rng, seedOrg } from './api-fixtures.ts'
import { parseCsv } from './helpers/export-csv.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { openLive } from './live-client.ts'

/**
 * Injection: every parameter of every endpoint (taken from the OpenAPI
 * document, so a new parameter is covered automatically) gets SQL payloads.
 * Each is either refused with a 400 or treated as a plain value. chdb has no
 * system.query_log, so the SQL text of every statement is recorded where it
 * enters the Warehouse (a pass-through wrapper; the real engine runs it) and
 * must never contain a payload; values travel only as {name:Type} parameters.
 */
const PAYLOADS = [
  "x' OR '1'='1",
  "'); DROP TABLE requests; --",
  "\\'; SELECT 1 FORMAT JSONEachRow; --",
  '{f_from:String}',
  '1) OR (1=1',
  '` UNION ALL SELECT name FROM system.tables --',
  'requests WHERE 1=1 --',
]

// Every parameter x these four keeps the run short; all payloads are used in the round-trip tests.
const LOOP_PAYLOADS = [PAYLOADS[0]!, PAYLOADS[1]!, PAYLOADS[3]!, PAYLOADS[5]!]

let stack: TestStack
let org: Org
const statements: string[] = []
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

function recording(wh: Warehouse): Warehouse {
  return {
    ...wh,
    query: (sql, params, signal) => {
      statements.push(sql)
      return wh.query(sql, params, signal)
    },
    stream: (sql, params, format) => {
      statements.push(sql)
      return wh.stream(sql, params, format)
    },
    command: (sql, params) => {
      statements.push(sql)
      return wh.command(sql, params)
    },
  }
}

let rawCount = 0
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-inj-'))
  const warehouse = recording(createWarehouse({ path: join(dir, 'clickhouse') }))
  stack = await startTestStack({ listen: true, overrides: { warehouse } })
  org = await seedOrg(stack.core)
  await insertHistory(stack.core, org, 300, 3, 3, Date.now())
  // Rows whose values ARE payloads: a filter naming them must find exactly them.
  const r = rng(9)
  await stack.core.warehouse.insertRows('requests', [
    makeRow(org.keys[0]!, Date.now() - 60_000, r, {
      request_id: randomUUID(),
      project: PAYLOADS[0]!,
      tags: [PAYLOADS[1]!],
    }),
    makeRow(org.keys[0]!, Date.now() - 60_000, r, {
      request_id: randomUUID(),
      tags: ['=HYPERLINK("http://evil.example")', '+cmd|calc', '-2+3', '@SUM(A1)'],
    }),
  ])
  rawCount = 302
})
afterAll(async () => stack?.close())

describe('injection', () => {
  it('every parameter of every endpoint refuses or treats payloads as values', async () => {
    const doc = (await stack.app.inject({ url: '/api/openapi.json' })).json()
    expect(doc.openapi).toBe('3.1.0')
    for (const path of [
      '/api/kpis',
      '/api/series',
      '/api/breakdown',
      '/api/leaderboard',
      '/api/keys/spend',
      '/api/requests',
      '/api/usage',
      '/api/export.csv',
      '/api/filters',
      '/api/live',
      '/api/session',
      '/api/me',
    ]) {
      expect(doc.paths[path], path).toBeDefined()
    }
    const names = doc.paths['/api/breakdown'].get.parameters.map((p: { name: string }) => p.name)
    expect(names).toEqual(
      expect.arrayContaining([
        'range',
        'tz',
        'keys',
        'tags',
        'by',
        'sort',
        'order',
        'search',
        'limit',
        'offset',
      ]),
    )
    let checked = 0
    statements.length = 0
    for (const [path, ops] of Object.entries<Record<string, { parameters?: { name: string }[] }>>(
      doc.paths,
    )) {
      const op = ops.get
      if (!op?.parameters?.length || path === '/api/live') continue
      for (const { name } of op.parameters) {
        for (const payload of LOOP_PAYLOADS) {
          const res = await stack.app.inject({
            url: `${path}?${name}=${encodeURIComponent(payload)}`,
            headers: admin,
          })
          expect(
            [200, 400],
            `${path}?${name}=${payload} -> ${res.statusCode} ${res.body.slice(0, 200)}`,
          ).toContain(res.statusCode)
          if (res.statusCode === 400)
            expect(res.json().error.details?.parameter ?? res.json().error.details?.parameters).toBeTruthy()
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThan(300)
    expect(statements.length).toBeGreaterThan(50)
    for (const sql of statements) for (const p of PAYLOADS) expect(sql.includes(p), sql).toBe(false)
    const [row] = await stack.core.warehouse.query<{ n: string }>('SELECT count() AS n FROM requests')
    expect(Number(row?.n)).toBe(rawCount)
  })

  it('payloads round-trip as literal values', async () => {
    const get = async (qs: string) =>
      (await stack.app.inject({ url: `/api/kpis?range=24h&${qs}`, headers: admin })).json()
    expect((await get(`projects=${encodeURIComponent(PAYLOADS[0]!)}`)).requests).toBe(1)
    expect((await get(`tags=${encodeURIComponent(PAYLOADS[1]!)}`)).requests).toBe(1)
    expect((await get(`models=${encodeURIComponent(PAYLOADS[0]!)}`)).requests).toBe(0)
    const bd = (
      await stack.app.inject({ url: '/api/breakdown?range=24h&by=project&search=%27', headers: admin })
    ).json()
    expect(bd.rows.map((r: { id: string }) => r.id)).toEqual([PAYLOADS[0]])
    const live = openLive(
      `${stack.url.replace('http', 'ws')}/api/live?range=24h&projects=${encodeURIComponent(PAYLOADS[0]!)}`,
      admin,
    )
    expect((await live.next((m) => m.type === 'snapshot')).kpis.requests).toBe(1)
    live.close()
  })

  it('the CSV quotes properly and neutralises formula cells', async () => {
    await stack.core.store.upsertTeam({ teamId: 'team_a', name: '=cmd|"/c calc"!A1, "quoted"\nline' })
    const byTag = await stack.app.inject({ url: '/api/export.csv?by=tag&range=7d', headers: admin })
    const ids = parseCsv(byTag.body).map((l) => l[0])
    for (const t of ['=HYPERLINK("http://evil.example")', '+cmd|calc', '-2+3', '@SUM(A1)']) {
      expect(ids).toContain(`'${t}`)
      expect(ids).not.toContain(t)
    }
    expect(byTag.body).toContain('"\'=HYPERLINK(""http://evil.example"")"')
    const byTeam = await stack.app.inject({ url: '/api/export.csv?by=team&range=7d', headers: admin })
    const names = parseCsv(byTeam.body).map((l) => l[1])
    expect(names).toContain(`'=cmd|"/c calc"!A1, "quoted"\nline`)
    // Every data row has the header's columns despite commas, quotes and newlines in names.
    const [header, ...rows] = parseCsv(byTeam.body)
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.every((l) => l.length === header!.length)).toBe(true)
  })
})
