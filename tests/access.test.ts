import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { insertHistory, type Org, seedOrg } from './api-fixtures.ts'
import { parseCsv } from './helpers/export-csv.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { openLive, upgradeStatus } from './live-client.ts'

/** The role matrix: each role against each usage endpoint and the WebSocket, plus web sessions. */
let stack: TestStack
let org: Org
let rows: UsageRow[]
const now = Date.now()

beforeAll(async () => {
  stack = await startTestStack({ listen: true })
  org = await seedOrg(stack.core)
  // Five days of history: all inside the default 7d range.
  rows = await insertHistory(stack.core, org, 600, 5, 7, now)
})
afterAll(async () => stack?.close())

const keyOf = (userId: string) => org.keys.find((k) => k.userId === userId)!
const bearer = (userId: string) => ({ authorization: `Bearer ${org.plaintext.get(keyOf(userId).keyId)}` })

type Who = 'admin-token' | 'admin' | 'lead' | 'member' | 'none' | 'bad'
function who(w: Who): { headers: Record<string, string>; visible: (r: UsageRow) => boolean } {
  switch (w) {
    case 'admin-token':
      return { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, visible: () => true }
    case 'admin':
      return { headers: bearer('u_admin'), visible: () => true }
    case 'lead':
      return { headers: bearer('u_team_a_lead'), visible: (r) => r.team_id === 'team_a' }
    case 'member':
      return { headers: bearer('u_team_a_m1'), visible: (r) => r.user_id === 'u_team_a_m1' }
    case 'none':
      return { headers: {}, visible: () => false }
    case 'bad':
      return { headers: { authorization: 'Bearer tm_not_a_real_key' }, visible: () => false }
  }
}

const ENDPOINTS = [
  '/api/me',
  '/api/filters',
  '/api/kpis',
  '/api/series?split=team',
  '/api/breakdown?by=user',
  '/api/leaderboard?by=user',
  '/api/keys/spend',
  '/api/requests?limit=1000',
  '/api/usage',
  '/api/export.csv?by=user&range=7d',
]

describe('role matrix over HTTP', () => {
  for (const w of ['none', 'bad'] as const) {
    it(`${w}: 401 on every endpoint, openapi stays public`, async () => {
      for (const url of ENDPOINTS) {
        const res = await stack.app.inject({ url, headers: who(w).headers })
        expect(res.statusCode, url).toBe(401)
        expect(res.json().error.code).toBe('unauthenticated')
      }
      expect((await stack.app.inject({ url: '/api/openapi.json' })).statusCode).toBe(200)
    })
  }

  for (const w of ['admin-token', 'admin', 'lead', 'member'] as const) {
    it(`${w}: every endpoint answers only what the role may see`, async () => {
      const { headers, visible } = who(w)
      const mine = rows.filter(visible)
      const users = new Set(mine.map((r) => r.user_id))
      const teams = new Set(mine.map((r) => r.team_id))
      const get = async (url: string) => {
        const res = await stack.app.inject({ url, headers })
        expect(res.statusCode, `${url} ${res.body}`).toBe(200)
        return res
      }
      const kpis = (await get('/api/kpis')).json()
      expect(kpis.requests).toBe(mine.length)
      expect(kpis.activeUsers).toBe(users.size)

      const series = (await get('/api/series?split=team')).json()
      expect(series.series.map((s: { id: string }) => s.id).sort()).toEqual([...teams].sort())

      const bd = (await get('/api/breakdown?by=user&limit=500')).json()
      expect(bd.rows.map((r: { id: string }) => r.id).sort()).toEqual([...users].sort())

      // Users are ranked network-wide for every role (the default leaderboard visibility,
      // tests/members.test.ts has the others); only the rows the role may open link.
      const lb = (await get('/api/leaderboard?by=user&limit=100')).json()
      expect(new Set(lb.rows.map((r: { id: string }) => r.id))).toEqual(new Set(rows.map((r) => r.user_id)))
      for (const r of lb.rows as { id: string; canOpen: boolean }[])
        expect(r.canOpen, r.id).toBe(users.has(r.id))

      const spend = (await get('/api/keys/spend')).json()
      const visibleKeys = org.keys.filter((k) =>
        w === 'lead' ? k.teamId === 'team_a' : w === 'member' ? k.userId === 'u_team_a_m1' : true,
      )
      expect(spend.keys.map((k: { keyId: string }) => k.keyId).sort()).toEqual(
        visibleKeys.map((k) => k.keyId).sort(),
      )

      const filters = (await get('/api/filters')).json()
      expect(filters.keys.map((k: { id: string }) => k.id).sort()).toEqual(
        visibleKeys.map((k) => k.keyId).sort(),
      )

      const log = (await get('/api/requests?limit=1000')).json()
      expect(log.rows.length).toBe(mine.length)

      const usage = (await get('/api/usage')).json()
      const month = new Date(now).toISOString().slice(0, 7)
      expect(usage.requests).toBe(mine.filter((r) => r.started_at.startsWith(month)).length)

      const csv = parseCsv((await get('/api/export.csv?by=user&range=7d')).body).slice(1)
      expect(new Set(csv.map((l) => l[0]))).toEqual(users)
    })
  }

  it('a filter naming a team, user or key outside the scope is 403, not empty', async () => {
    const otherTeamKey = keyOf('u_team_b_m1').keyId
    const otherMemberKey = keyOf('u_team_a_m2').keyId
    const cases: [Who, string, number][] = [
      ['lead', 'teams=team_b', 403],
      ['lead', 'users=u_team_b_m1', 403],
      ['lead', `keys=${otherTeamKey}`, 403],
      ['lead', 'users=u_team_a_m2', 200],
      ['lead', 'teams=team_a', 200],
      ['member', 'users=u_team_a_m2', 403],
      ['member', `keys=${otherMemberKey}`, 403],
      ['member', 'teams=team_b', 403],
      ['member', 'users=u_team_a_m1', 200],
      ['member', 'teams=team_a', 200],
      ['admin', 'teams=team_b', 200],
      ['admin-token', `keys=${otherTeamKey}`, 200],
    ]
    for (const [w, qs, status] of cases) {
      for (const path of ['/api/kpis', '/api/breakdown', '/api/export.csv', '/api/usage', '/api/requests']) {
        const res = await stack.app.inject({ url: `${path}?${qs}`, headers: who(w).headers })
        expect(res.statusCode, `${w} ${path}?${qs}`).toBe(status)
        if (status === 403) expect(res.json().error.code).toBe('forbidden_filter')
      }
      const ws = await upgradeStatus(`${stack.url}/api/live?${qs}`, who(w).headers)
      expect(ws, `${w} live?${qs}`).toBe(status === 200 ? 101 : status)
    }
  })
})

describe('role matrix over the WebSocket', () => {
  it('refuses unauthenticated, bad filters and foreign origins at the handshake', async () => {
    const url = `${stack.url}/api/live`
    expect(await upgradeStatus(url)).toBe(401)
    expect(await upgradeStatus(url, who('bad').headers)).toBe(401)
    expect(await upgradeStatus(`${url}?range=1y`, who('member').headers)).toBe(400)
    expect(await upgradeStatus(`${url}?nope=1`, who('member').headers)).toBe(400)
    expect(await upgradeStatus(url, { ...who('member').headers, origin: 'https://evil.example' })).toBe(403)
    expect(await upgradeStatus(url, { ...who('member').headers, origin: stack.url })).toBe(101)
  })

  for (const w of ['admin-token', 'lead', 'member'] as const) {
    it(`${w}: the live snapshot is scoped like the HTTP answers`, async () => {
      const { headers, visible } = who(w)
      const live = openLive(`${stack.url.replace('http', 'ws')}/api/live?range=7d`, headers)
      const snap = await live.next<{ type: string; kpis: { requests: number } }>((m) => m.type === 'snapshot')
      expect(snap.kpis.requests).toBe(rows.filter(visible).length)
      live.close()
    })
  }

  it('closes with 4401 once the credential is revoked', async () => {
    const { key, plaintext } = await stack.core.store.createKey({ userId: 'u_team_a_m2', name: 'to revoke' })
    const live = openLive(`${stack.url.replace('http', 'ws')}/api/live`, {
      authorization: `Bearer ${plaintext}`,
    })
    await live.next((m) => m.type === 'snapshot')
    await stack.core.store.revokeKey(key.keyId)
    expect((await live.closed).code).toBe(4401)
  })
})

describe('web sessions', () => {
  const cookieOf = (setCookie: string | string[] | undefined) => String(setCookie).split(';')[0]!

  it('exchanges a virtual key for an httpOnly SameSite cookie, scoped like the key', async () => {
    const res = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { token: org.plaintext.get(keyOf('u_team_a_m1').keyId) },
    })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({
      role: 'member',
      userId: 'u_team_a_m1',
      teamId: 'team_a',
      via: 'session',
    })
    const set = String(res.headers['set-cookie'])
    expect(set).toMatch(/HttpOnly/i)
    expect(set).toMatch(/SameSite=Lax/i)
    expect(set).not.toContain(org.plaintext.get(keyOf('u_team_a_m1').keyId)!)
    const cookie = cookieOf(res.headers['set-cookie'])
    const me = await stack.app.inject({ url: '/api/me', headers: { cookie } })
    expect(me.json().userId).toBe('u_team_a_m1')
    const kpis = await stack.app.inject({ url: '/api/kpis', headers: { cookie } })
    expect(kpis.json().requests).toBe(rows.filter((r) => r.user_id === 'u_team_a_m1').length)
    const live = openLive(`${stack.url.replace('http', 'ws')}/api/live`, { cookie })
    expect((await live.next((m) => m.type === 'snapshot')).kpis.requests).toBe(kpis.json().requests)
    live.close()
    const out = await stack.app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie } })
    expect(String(out.headers['set-cookie'])).toMatch(/tm_session=;/)
  })

  it('a sign-in token works once; revoking it ends the session', async () => {
    const { key, plaintext } = await stack.core.store.createKey({
      userId: 'u_team_a_lead',
      name: 'web sign-in',
      kind: 'signin',
      expiresAt: new Date(Date.now() + 15 * 60_000),
    })
    const first = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { token: plaintext },
    })
    expect(first.statusCode).toBe(200)
    expect(first.json().role).toBe('lead')
    const cookie = cookieOf(first.headers['set-cookie'])
    expect((await stack.app.inject({ url: '/api/kpis', headers: { cookie } })).statusCode).toBe(200)
    const again = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { token: plaintext },
    })
    expect(again.statusCode).toBe(401)
    await stack.core.store.revokeKey(key.keyId)
    expect((await stack.app.inject({ url: '/api/kpis', headers: { cookie } })).statusCode).toBe(401)
  })

  it('ADMIN_TOKEN signs in as admin; wrong tokens and malformed bodies do not', async () => {
    const ok = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { token: TEST_ADMIN_TOKEN },
    })
    expect(ok.json().role).toBe('admin')
    const bad = await stack.app.inject({ method: 'POST', url: '/api/session', payload: { token: 'tm_nope' } })
    expect(bad.statusCode).toBe(401)
    const malformed = await stack.app.inject({ method: 'POST', url: '/api/session', payload: { tokn: 'x' } })
    expect(malformed.statusCode).toBe(400)
    const forged = await stack.app.inject({
      url: '/api/me',
      headers: { cookie: 'tm_session=eyJjIjoiYWRtaW4tdG9rZW4iLCJlIjo5OTk5OTk5OTk5OTk5fQ.forged' },
    })
    expect(forged.statusCode).toBe(401)
  })
})
