import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { APPS, insertHistory, MODELS, type Org, PROJECTS, rng, seedOrg, TAGS } from './api-fixtures.ts'
import { DOCUMENTED_EXPORT_HEADER, parseCsv } from './helpers/export-csv.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * Property: for random filter combinations (ranges, zones, dimensions,
 * callers), every KPI, series point and breakdown row the API answers from
 * its rollups equals a recomputation over the raw `requests` table written
 * independently below (different SQL: has() instead of IN, arrayLastIndex
 * over the API's bucket edges instead of toStartOf*, the caller's scope as
 * user/team conditions).
 */
const SEED = Number(process.env.API_PROPERTY_SEED ?? Date.now() % 100_000)
const ITERATIONS = 30

let stack: TestStack
let org: Org
let rows: UsageRow[]

beforeAll(async () => {
  stack = await startTestStack()
  org = await seedOrg(stack.core)
  rows = await insertHistory(stack.core, org, 3000, 70, SEED, Date.now())
})
afterAll(async () => stack?.close())

type Caller = {
  headers: Record<string, string>
  scopeSql: string
  scopeParams: Record<string, unknown>
  label: string
}

function callers(): Caller[] {
  const out: Caller[] = [
    {
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      scopeSql: '1',
      scopeParams: {},
      label: 'admin',
    },
  ]
  for (const [team, lead] of org.leads) {
    const key = org.keys.find((k) => k.userId === lead.userId)!
    out.push({
      headers: { authorization: `Bearer ${org.plaintext.get(key.keyId)}` },
      scopeSql: 'team_id = {scope_team:String}',
      scopeParams: { scope_team: team },
      label: `lead:${team}`,
    })
  }
  for (const u of org.users.filter((u) => u.role === 'member').slice(0, 3)) {
    const key = org.keys.find((k) => k.userId === u.userId)!
    out.push({
      headers: { 'x-api-key': org.plaintext.get(key.keyId)! },
      scopeSql: 'user_id = {scope_user:String}',
      scopeParams: { scope_user: u.userId },
      label: `member:${u.userId}`,
    })
  }
  return out
}

interface Case {
  query: Record<string, string>
  lists: Record<string, string[]>
  status?: 'ok' | 'error'
}

function randomCase(r: ReturnType<typeof rng>, caller: Caller): Case {
  const q: Record<string, string> = {}
  const tz = r.pick(['UTC', 'UTC', 'America/New_York', 'Asia/Kolkata', 'Europe/Berlin'])
  if (tz !== 'UTC') q.tz = tz
  const now = Date.now()
  const kind = r.pick(['preset', 'preset', 'month', 'custom-days', 'custom-raw'])
  if (kind === 'preset') q.range = r.pick(['24h', '7d', '14d', '30d', '90d'])
  if (kind === 'month') {
    const d = new Date(now - r.int(0, 2) * 28 * 86_400_000)
    q.month = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`
  }
  if (kind === 'custom-days') {
    const start = new Date(now - r.int(3, 60) * 86_400_000).toISOString().slice(0, 10)
    const end = new Date(Date.parse(start) + r.int(1, 20) * 86_400_000).toISOString().slice(0, 10)
    q.from = start
    q.to = end
  }
  if (kind === 'custom-raw') {
    const from = now - r.int(1, 50) * 86_400_000 - r.int(0, 86_400_000)
    q.from = new Date(from).toISOString()
    q.to = new Date(from + r.int(3_600_000, 20 * 86_400_000)).toISOString()
  }
  const lists: Record<string, string[]> = {}
  const scopedUsers = org.users.filter((u) =>
    caller.label === 'admin'
      ? true
      : caller.label.startsWith('lead:')
        ? u.teamId === caller.label.slice(5)
        : u.userId === caller.label.slice(7),
  )
  const scopedKeys = org.keys.filter((k) => scopedUsers.some((u) => u.userId === k.userId))
  const domains: Record<string, string[]> = {
    keys: scopedKeys.map((k) => k.keyId),
    users: scopedUsers.map((u) => u.userId),
    teams: [...new Set(scopedUsers.map((u) => u.teamId))],
    models: [...MODELS.map((m) => m.model), 'no-such-model'],
    providers: ['openai', 'anthropic', 'simulated'],
    projects: PROJECTS.filter(Boolean),
    apps: APPS.filter(Boolean),
    tags: TAGS,
  }
  for (const dim of Object.keys(domains)) {
    if (r.next() < 0.22) {
      lists[dim] = r.subset(domains[dim]!, 2)
      q[dim] = lists[dim].join(',')
    }
  }
  let status: 'ok' | 'error' | undefined
  if (r.next() < 0.15) {
    status = r.pick(['ok', 'error'] as const)
    q.status = status
  }
  return { query: q, lists, status }
}

const COLS: Record<string, string> = {
  keys: 'key_id',
  users: 'user_id',
  teams: 'team_id',
  models: 'model',
  providers: 'provider',
  projects: 'project',
  apps: 'client_app',
}

function rawWhere(c: Case, caller: Caller, from: string, to: string) {
  const conds = [
    "started_at >= parseDateTime64BestEffort({r_from:String}, 3, 'UTC')",
    "started_at < parseDateTime64BestEffort({r_to:String}, 3, 'UTC')",
    caller.scopeSql,
  ]
  const params: Record<string, unknown> = { r_from: from, r_to: to, ...caller.scopeParams }
  for (const [dim, values] of Object.entries(c.lists)) {
    if (dim === 'tags') conds.push('arrayExists(t -> has({r_tags:Array(String)}, t), tags)')
    else conds.push(`has({r_${dim}:Array(String)}, ${COLS[dim]})`)
    params[`r_${dim}`] = values
  }
  if (c.status === 'ok') conds.push('status_code < 400')
  if (c.status === 'error') conds.push('NOT (status_code < 400)')
  return { sql: conds.join(' AND '), params }
}

const RAW_METRICS = `count() AS requests, countIf(status_code >= 400 OR error_class != '') AS errors,
  sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cached_read_tokens) AS cached,
  sum(cache_write_tokens) AS cache_write, sum(reasoning_tokens) AS reasoning, countIf(price_unknown) AS unpriced,
  toString(sum(cost_usd)) AS cost, uniqExact(user_id) AS users`

type RawMetrics = {
  requests: number
  errors: number
  input: number
  output: number
  cached: number
  cache_write: number
  reasoning: number
  unpriced: number
  cost: string
  users: number
}

function expectTotals(api: Record<string, number>, raw: RawMetrics | undefined, where: string) {
  const expected = {
    requests: Number(raw?.requests ?? 0),
    errors: Number(raw?.errors ?? 0),
    inputTokens: Number(raw?.input ?? 0),
    outputTokens: Number(raw?.output ?? 0),
    cachedTokens: Number(raw?.cached ?? 0),
    cacheWriteTokens: Number(raw?.cache_write ?? 0),
    reasoningTokens: Number(raw?.reasoning ?? 0),
    unpricedRequests: Number(raw?.unpriced ?? 0),
    spendUsd: Number(raw?.cost ?? 0),
    activeUsers: Number(raw?.users ?? 0),
  }
  const got = Object.fromEntries(Object.keys(expected).map((k) => [k, api[k]]))
  expect(got, where).toEqual(expected)
}

const GROUP_SQL: Record<string, { col: string; join: string }> = {
  user: { col: 'user_id', join: '' },
  team: { col: 'team_id', join: '' },
  key: { col: 'key_id', join: '' },
  model: { col: 'model', join: '' },
  provider: { col: 'provider', join: '' },
  project: { col: 'project', join: '' },
  app: { col: 'client_app', join: '' },
  tag: { col: 'tag', join: "ARRAY JOIN if(empty(tags), [''], tags) AS tag" },
}

function groupSql(dim: string, c: Case) {
  const g = GROUP_SQL[dim]!
  const tagCond = dim === 'tag' && c.lists.tags ? ' AND has({r_tags:Array(String)}, tag)' : ''
  return { ...g, tagCond }
}

describe(`usage API equals a raw recomputation (seed ${SEED})`, () => {
  it('KPIs, series and breakdowns for random filters, zones and callers', async () => {
    const r = rng(SEED)
    const wh = stack.core.warehouse
    const all = callers()
    const sources = new Set<string>()
    for (let i = 0; i < ITERATIONS; i++) {
      const caller = r.pick(all)
      const c = randomCase(r, caller)
      const qs = new URLSearchParams(c.query).toString()
      const label = `#${i} ${caller.label} ?${qs}`

      const kpisRes = await stack.app.inject({ url: `/api/kpis?${qs}`, headers: caller.headers })
      expect(kpisRes.statusCode, `${label} ${kpisRes.body}`).toBe(200)
      const kpis = kpisRes.json()
      sources.add(kpis.source)
      const where = rawWhere(c, caller, kpis.from, kpis.to)
      const [raw] = await wh.query<RawMetrics & { lo: number; hi: number }>(
        `SELECT ${RAW_METRICS}, min(latency_ms) AS lo, max(latency_ms) AS hi FROM requests WHERE ${where.sql}`,
        where.params,
      )
      expectTotals(kpis, raw, `kpis ${label}`)
      expect(kpis.totalTokens).toBe(kpis.inputTokens + kpis.outputTokens)
      expect(kpis.errorRate).toBeCloseTo(kpis.requests ? kpis.errors / kpis.requests : 0, 12)
      if (kpis.requests > 0) {
        // Percentiles come from t-digests (approximate by design): bounded by the data, ordered.
        expect(kpis.latencyP50Ms).toBeGreaterThanOrEqual(Number(raw!.lo))
        expect(kpis.latencyP95Ms).toBeLessThanOrEqual(Number(raw!.hi))
        expect(kpis.latencyP50Ms).toBeLessThanOrEqual(kpis.latencyP95Ms)
      } else expect(kpis.latencyP50Ms).toBeNull()

      // Series, split by a random dimension.
      const split = r.pick(['none', 'model', 'team', 'key', 'tag', 'user', 'provider'])
      const splitLimit = r.pick([3, 50])
      const seriesRes = await stack.app.inject({
        url: `/api/series?${qs}&split=${split}&splitLimit=${splitLimit}`,
        headers: caller.headers,
      })
      expect(seriesRes.statusCode, label).toBe(200)
      const series = seriesRes.json()
      expect(series.source).toBe(kpis.source)
      const edges = series.buckets as string[]
      checkBucketEdges(edges, series.granularity, c.query.tz ?? 'UTC', label)
      const g = groupSql(split === 'none' ? 'team' : split, c)
      const perBucket = await wh.query<RawMetrics & { i: number; g: string }>(
        `SELECT arrayLastIndex(b -> b <= started_at, {edges:Array(DateTime64(3, 'UTC'))}) AS i,
           ${split === 'none' ? "''" : g.col} AS g, ${RAW_METRICS}
         FROM requests ${split === 'none' ? '' : g.join} WHERE ${where.sql}${split === 'none' ? '' : g.tagCond} GROUP BY i, g`,
        { ...where.params, edges: edges.map((e) => e.replace('T', ' ').replace('Z', '')) },
      )
      const byGroup = new Map<string, Map<number, RawMetrics>>()
      for (const row of perBucket) {
        if (!byGroup.has(row.g)) byGroup.set(row.g, new Map())
        byGroup.get(row.g)!.set(Number(row.i) - 1, row)
      }
      const named = series.series.filter((s: { id: string }) => s.id !== '__other__')
      if (split === 'none') expect(named.map((s: { id: string }) => s.id)).toEqual(['total'])
      else expect(named.length).toBe(Math.min(splitLimit, byGroup.size))
      for (const s of named) {
        const rawGroup = byGroup.get(split === 'none' ? '' : s.id)
        s.points.forEach((p: Record<string, number>, b: number) => {
          expectTotals(p, rawGroup?.get(b), `series ${split}=${s.id}[${b}] ${label}`)
        })
      }
      const other = series.series.find((s: { id: string }) => s.id === '__other__')
      if (other) {
        const rest = [...byGroup.keys()].filter((k) => !named.some((s: { id: string }) => s.id === k))
        other.points.forEach((p: Record<string, number>, b: number) => {
          const req = rest.reduce((n, k) => n + Number(byGroup.get(k)!.get(b)?.requests ?? 0), 0)
          const input = rest.reduce((n, k) => n + Number(byGroup.get(k)!.get(b)?.input ?? 0), 0)
          expect([p.requests, p.inputTokens], `other[${b}] ${label}`).toEqual([req, input])
        })
      } else if (split !== 'none') expect(byGroup.size).toBeLessThanOrEqual(splitLimit)

      // Breakdown by a random dimension, all rows in one page.
      const by = r.pick(['user', 'team', 'key', 'model', 'provider', 'project', 'app', 'tag'])
      const sort = r.pick(['requests', 'input', 'output', 'cost', 'name'])
      const bRes = await stack.app.inject({
        url: `/api/breakdown?${qs}&by=${by}&sort=${sort}&order=asc&limit=500`,
        headers: caller.headers,
      })
      expect(bRes.statusCode, label).toBe(200)
      const bd = bRes.json()
      const bg = groupSql(by, c)
      const rawGroups = await wh.query<RawMetrics & { g: string; models: string[] }>(
        `SELECT ${bg.col} AS g, ${RAW_METRICS}, arraySort(groupUniqArray(model)) AS models
         FROM requests ${bg.join} WHERE ${where.sql}${bg.tagCond} GROUP BY g`,
        where.params,
      )
      expect(bd.total, `breakdown ${by} ${label}`).toBe(rawGroups.length)
      const rawById = new Map(rawGroups.map((x) => [x.g, x]))
      for (const row of bd.rows) {
        expectTotals(row, rawById.get(row.id), `breakdown ${by}=${row.id} ${label}`)
        expect(row.models).toEqual(rawById.get(row.id)!.models)
        expect(row.trend.reduce((a: number, b: number) => a + b, 0)).toBe(row.requests)
      }
      const sortKey: Record<string, (x: Record<string, number>) => number> = {
        requests: (x) => x.requests ?? 0,
        input: (x) => x.inputTokens ?? 0,
        output: (x) => x.outputTokens ?? 0,
        cost: (x) => x.spendUsd ?? 0,
      }
      for (let k = 1; k < bd.rows.length && sort !== 'name'; k++) {
        expect(sortKey[sort]!(bd.rows[k - 1])).toBeLessThanOrEqual(sortKey[sort]!(bd.rows[k]))
      }
    }
    // The generator must have exercised every table at least once for the property to mean much.
    expect([...sources].sort(), `sources seen (seed ${SEED})`).toEqual(
      expect.arrayContaining(['requests', 'usage_1d', 'usage_1h']),
    )
  })

  it('picks the coarsest exact source for presets and zones', async () => {
    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const src = async (qs: string) =>
      (await stack.app.inject({ url: `/api/kpis?${qs}`, headers: h })).json().source
    expect(await src('range=30d')).toBe('usage_1d')
    expect(await src('range=30d&tz=America/New_York')).toBe('usage_1h')
    expect(await src('range=7d&tz=Asia/Kolkata')).toBe('usage_5m')
    expect(await src('range=24h')).toBe('usage_1h')
    expect(await src('from=2026-01-01T00:05:00Z&to=2026-01-01T03:00:00Z')).toBe('usage_5m')
    expect(await src('from=2026-01-01T00:00:01Z&to=2026-01-02T00:00:00Z')).toBe('requests')
  })

  it('the CSV export carries the same numbers as the API for the same filter', async () => {
    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    for (const [by, qs] of [
      ['key', 'range=30d'],
      ['tag', 'range=14d&tz=Europe/Berlin&models=gpt-4o,claude-sonnet'],
      ['user', `from=${isoDay(Date.now() - 80 * 86_400_000)}&to=${isoDay(Date.now() + 86_400_000)}`],
    ] as const) {
      const csvRes = await stack.app.inject({ url: `/api/export.csv?${qs}&by=${by}&rows=day`, headers: h })
      expect(csvRes.statusCode).toBe(200)
      expect(csvRes.headers['content-type']).toContain('text/csv')
      const [header, ...lines] = parseCsv(csvRes.body)
      expect(header).toEqual(['day', ...DOCUMENTED_EXPORT_HEADER])
      const perGroup = new Map<string, { requests: number; input: number; cost: number }>()
      const perDay = new Map<string, number>()
      for (const l of lines) {
        const g = perGroup.get(l[1]!) ?? { requests: 0, input: 0, cost: 0 }
        g.requests += Number(l[5])
        g.input += Number(l[6])
        g.cost += Math.round(Number(l[11]) * 1e9)
        perGroup.set(l[1]!, g)
        perDay.set(l[0]!, (perDay.get(l[0]!) ?? 0) + Number(l[5]))
      }
      const bd = (
        await stack.app.inject({ url: `/api/breakdown?${qs}&by=${by}&limit=500`, headers: h })
      ).json()
      expect(perGroup.size).toBe(bd.total)
      for (const row of bd.rows) {
        const g = perGroup.get(row.id)!
        expect([g.requests, g.input, g.cost], `${by}=${row.id}`).toEqual([
          row.requests,
          row.inputTokens,
          Math.round(row.spendUsd * 1e9),
        ])
      }
      if (by !== 'tag') {
        const s = (await stack.app.inject({ url: `/api/series?${qs}&granularity=1d`, headers: h })).json()
        const tz = new URLSearchParams(qs).get('tz') ?? 'UTC'
        s.buckets.forEach((b: string, i: number) => {
          const day = new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(new Date(b))
          expect(perDay.get(day) ?? 0, day).toBe(s.series[0].points[i].requests)
        })
      }
    }
  })

  it('the monthly shape sums to the raw table in continuous cents', async () => {
    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const res = await stack.app.inject({ url: '/api/usage', headers: h })
    expect(res.statusCode).toBe(200)
    const u = res.json()
    const [y, m] = u.month.split('-').map(Number)
    const from = Date.UTC(y, m - 1, 1)
    const to = Date.UTC(y, m, 1)
    const inMonth = rows.filter((x) => {
      const t = Date.parse(`${x.started_at.replace(' ', 'T')}Z`)
      return t >= from && t < to
    })
    const nanos = inMonth.reduce((n, x) => n + BigInt(x.cost_usd.replace('.', '')), 0n)
    expect(u.requests).toBe(inMonth.length)
    expect(u.totalCents).toBeCloseTo(Number(nanos) / 1e7, 6)
    expect(u.daily.length).toBe(new Date(Date.UTC(y, m, 0)).getUTCDate())
    expect(u.daily.reduce((n: number, d: { requests: number }) => n + d.requests, 0)).toBe(inMonth.length)
    expect(u.keys.reduce((n: number, k: { costCents: number }) => n + k.costCents, 0)).toBeCloseTo(
      u.totalCents,
      6,
    )
    // Sub-cent precision survives: some value is not a whole number of cents.
    expect(u.daily.some((d: { totalCents: number }) => !Number.isInteger(d.totalCents))).toBe(true)
  })

  it('the request log pages by cursor through exactly one day of one key and model', async () => {
    const h = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const sample = rows[0]!
    const day = sample.started_at.slice(0, 10)
    const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
    const qs = `from=${day}&to=${next}&keys=${sample.key_id}&models=${sample.model}&limit=2`
    const expected = rows
      .filter((x) => x.key_id === sample.key_id && x.model === sample.model && x.started_at.startsWith(day))
      .map((x) => x.request_id)
    const seen: string[] = []
    let cursor = ''
    for (let page = 0; page < 100; page++) {
      const res = await stack.app.inject({
        url: `/api/requests?${qs}${cursor ? `&cursor=${cursor}` : ''}`,
        headers: h,
      })
      expect(res.statusCode).toBe(200)
      const body = res.json()
      seen.push(...body.rows.map((x: { requestId: string }) => x.requestId))
      if (!body.nextCursor) break
      cursor = body.nextCursor
    }
    expect(seen.sort()).toEqual(expected.sort())
  })
})

function checkBucketEdges(edges: string[], granularity: string, tz: string, label: string) {
  const fmt = new Intl.DateTimeFormat('en-GB', {
    timeZone: tz,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  })
  for (const e of edges) {
    const hm = fmt.format(new Date(e))
    if (granularity === '1d') expect(hm, `${e} ${label}`).toBe('00:00')
    if (granularity === '1h') expect(hm.endsWith(':00'), `${e} ${label}`).toBe(true)
  }
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)
