import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageFilter } from '../services/src/api/filters.ts'
import { latencySourceFits } from '../services/src/api/queries/kpis.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { makeRow, type Org, rng, seedOrg } from './api-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * KPI percentiles come from latency_1d (team, provider, model, status) when
 * the filter fits it and from usage_1d otherwise. Latencies are constant per
 * group, so every percentile has one exact answer whichever table merged it:
 * a filter applied to the wrong table, or not at all, moves it.
 */
let stack: TestStack
let org: Org

const DAY = 86_400_000

beforeAll(async () => {
  stack = await startTestStack()
  org = await seedOrg(stack.core)
  const r = rng(5)
  const now = Date.now()
  const keyOf = (team: string) => org.keys.find((k) => k.teamId === team && k.userId.endsWith('_m1'))!
  const rows: UsageRow[] = []
  const add = (n: number, team: string, over: Partial<UsageRow>) => {
    for (let i = 0; i < n; i++)
      rows.push(makeRow(keyOf(team), now - DAY - Math.floor(r.next() * 20 * DAY), r, over))
  }
  const ok = { status_code: 200, error_class: '', model: 'gpt-4o-mini', provider: 'openai', tags: ['alpha'] }
  add(150, 'team_a', { ...ok, latency_ms: 100 })
  add(40, 'team_b', { ...ok, latency_ms: 900, tags: ['beta'] })
  add(10, 'team_a', { ...ok, status_code: 500, error_class: 'upstream_error', latency_ms: 5000 })
  await stack.core.warehouse.insertRows('requests', rows, { dedupToken: 'latency-test-1' })
  // A replayed batch is dropped by the rollup's deduplication window too.
  await stack.core.warehouse.insertRows('requests', rows, { dedupToken: 'latency-test-1' })
})
afterAll(async () => stack?.close())

async function kpis(q: string) {
  const res = await stack.app.inject({
    method: 'GET',
    url: `/api/kpis?range=30d${q}`,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  })
  expect(res.statusCode).toBe(200)
  const k = res.json() as { source: string; requests: number; latencyP50Ms: number; latencyP95Ms: number }
  expect(k.source).toBe('usage_1d')
  return k
}

describe('KPI latency percentiles', () => {
  it('latency_1d counts every request once, replays included', async () => {
    const [row] = await stack.core.warehouse.query<{ l: string; raw: string }>(
      'SELECT (SELECT sum(requests) FROM latency_1d) AS l, (SELECT count() FROM requests) AS raw',
    )
    expect(Number(row?.raw)).toBe(200)
    expect(Number(row?.l)).toBe(200)
  })

  it('answers filters it holds from latency_1d exactly', async () => {
    expect(await kpis('')).toMatchObject({ requests: 200, latencyP50Ms: 100 })
    expect(await kpis('&teams=team_b')).toMatchObject({ requests: 40, latencyP50Ms: 900, latencyP95Ms: 900 })
    expect(await kpis('&status=error')).toMatchObject({
      requests: 10,
      latencyP50Ms: 5000,
      latencyP95Ms: 5000,
    })
    expect(await kpis('&teams=team_a&status=ok&models=gpt-4o-mini&providers=openai')).toMatchObject({
      requests: 150,
      latencyP50Ms: 100,
      latencyP95Ms: 100,
    })
    expect(await kpis('&models=claude-sonnet')).toMatchObject({ requests: 0, latencyP50Ms: null })
  })

  it('falls back to usage_1d for dimensions latency_1d does not hold', async () => {
    expect(await kpis('&tags=beta')).toMatchObject({ requests: 40, latencyP50Ms: 900, latencyP95Ms: 900 })
    expect(await kpis('&users=u_team_b_m1')).toMatchObject({ requests: 40, latencyP50Ms: 900 })
    const member = org.keys.find((k) => k.userId === 'u_team_b_m1')!
    const res = await stack.app.inject({
      method: 'GET',
      url: '/api/kpis?range=30d',
      headers: { 'x-api-key': org.plaintext.get(member.keyId)! },
    })
    expect(res.json()).toMatchObject({ requests: 40, latencyP50Ms: 900, latencyP95Ms: 900 })
  })

  it('uses latency_1d only when the range, scope and every filter fit it', () => {
    const none = {
      keys: [],
      tags: [],
      teams: [],
      users: [],
      models: [],
      providers: [],
      projects: [],
      apps: [],
    }
    const f = (source: string, lists: Partial<UsageFilter['lists']> = {}) =>
      ({ range: { source }, lists: { ...none, ...lists }, status: 'ok' }) as unknown as UsageFilter
    const all = { kind: 'all' } as const
    expect(latencySourceFits(f('usage_1d', { teams: ['t'], models: ['m'], providers: ['p'] }), all)).toBe(
      true,
    )
    expect(latencySourceFits(f('usage_1d'), { kind: 'team', teamId: 't' })).toBe(true)
    expect(latencySourceFits(f('usage_1h'), all)).toBe(false)
    expect(latencySourceFits(f('usage_1d'), { kind: 'keys', keyIds: ['k'], userId: 'u', teamId: 't' })).toBe(
      false,
    )
    for (const dim of ['keys', 'tags', 'users', 'projects', 'apps'] as const) {
      expect(latencySourceFits(f('usage_1d', { [dim]: ['x'] }), all)).toBe(false)
    }
  })
})
