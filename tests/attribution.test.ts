import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// Attribution follows the user: a row takes the team the user is in when the
// request is made, not the team their key was made in. Moving a user moves
// their future rows (and team budgets); each lead sees exactly their team's rows.

let stack: TestStack
const plain: Record<string, string> = {}

const admin = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
  const res = await stack.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    payload,
  })
  expect(res.statusCode, res.body).toBeLessThan(300)
  return res.json()
}
const user = (userId: string, teamId: string, role: 'member' | 'lead') =>
  admin('POST', '/api/admin/users', { userId, email: `${userId}@example.com`, name: userId, teamId, role })
const ask = async (who: string) => {
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${plain[who]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'sim-attr', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
  })
  expect(res.status).toBe(200)
  await res.text()
  return res.headers.get('x-request-id')!
}
const logOf = async (who: string) => {
  const res = await stack.app.inject({
    url: '/api/requests?limit=1000',
    headers: { authorization: `Bearer ${plain[who]}` },
  })
  expect(res.statusCode, res.body).toBe(200)
  return (res.json().rows as { requestId: string; teamId?: string; team_id?: string }[])
    .map((r) => r.requestId)
    .sort()
}
const spent = async (budgetId: string) => {
  const { budgets } = await admin('GET', '/api/admin/budgets')
  return (budgets.find((b: { budgetId: string }) => b.budgetId === budgetId) as { spentUsd: number }).spentUsd
}

beforeAll(async () => {
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startTestStack({ listen: true, env: { DEMO: 'true' } })
  for (const t of ['team-a', 'team-b']) await admin('POST', '/api/admin/teams', { teamId: t, name: t })
  await user('mover', 'team-a', 'member')
  await user('lead-a', 'team-a', 'lead')
  await user('lead-b', 'team-b', 'lead')
  await admin('PUT', '/api/admin/models/sim-attr', {
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 0,
    outputPerM: 1000,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
  for (const who of ['mover', 'lead-a', 'lead-b']) {
    plain[who] = (await admin('POST', '/api/admin/keys', { userId: who, name: `${who} key` })).plaintext
  }
  for (const t of ['team-a', 'team-b']) {
    await admin('POST', '/api/admin/budgets', {
      budgetId: `b_${t}`,
      scope: 'team',
      scopeId: t,
      period: 'day',
      capUsd: 10,
    })
  }
})
afterAll(async () => stack?.close())

describe('attribution follows the user', () => {
  it("a moved user's later rows (and team spend) go to the new team; each lead sees exactly their team's rows", async () => {
    const before = await ask('mover')
    // Same key, user moved to team B.
    await user('mover', 'team-b', 'member')
    const after = await ask('mover')

    await stack.core.recorder.flush()
    const rows = await stack.core.warehouse.query<{ id: string; team_id: string }>(
      'SELECT toString(request_id) AS id, team_id FROM requests WHERE request_id IN {ids:Array(UUID)}',
      { ids: [before, after] },
    )
    const team = Object.fromEntries(rows.map((r) => [r.id, r.team_id]))
    expect(team).toEqual({ [before]: 'team-a', [after]: 'team-b' })

    // Each answer cost 5 tokens x $0.001: the team budgets counted the team of the moment.
    expect(await spent('b_team-a')).toBeCloseTo(0.005, 9)
    expect(await spent('b_team-b')).toBeCloseTo(0.005, 9)

    expect(await logOf('lead-a')).toEqual([before])
    expect(await logOf('lead-b')).toEqual([after])
    // The mover's own view follows their keys, both rows.
    expect(await logOf('mover')).toEqual([before, after].sort())

    // The key itself now belongs to team B (admin listing, key breakdowns, key budgets of a lead).
    const { keys } = await admin('GET', '/api/admin/keys')
    expect(keys.find((k: { userId: string }) => k.userId === 'mover').teamId).toBe('team-b')
  })
})
