import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAdminStore } from '../services/src/core/identity/admin-store.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { openLive } from './live-client.ts'

/** Server-side sessions: every way a session must end, the admin list, and sign-in tokens exchanged once. */
let stack: TestStack
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

beforeAll(async () => {
  stack = await startTestStack({ listen: true, env: { SIGNIN_ATTEMPTS_PER_MIN: '1000' } })
  const s = stack.core.store
  await s.upsertTeam({ teamId: 'team_a', name: 'Team A' })
  await s.upsertTeam({ teamId: 'team_b', name: 'Team B' })
  for (const u of ['u_1', 'u_2', 'u_3', 'u_4', 'u_5'])
    await s.upsertUser({ userId: u, email: `${u}@x.io`, name: `User ${u}`, teamId: 'team_a', role: 'member' })
})
afterAll(async () => stack?.close())

const cookieOf = (setCookie: string | string[] | undefined) => String(setCookie).split(';')[0]!

async function signIn(token: string) {
  const res = await stack.app.inject({ method: 'POST', url: '/api/session', payload: { token } })
  return { res, cookie: res.statusCode === 200 ? cookieOf(res.headers['set-cookie']) : '' }
}
const me = (cookie: string) => stack.app.inject({ url: '/api/me', headers: { cookie } })
async function newKey(userId: string) {
  return stack.core.store.createKey({ userId, name: 'web' })
}
async function newSignin(userId: string) {
  return stack.core.store.createKey({
    userId,
    name: 'web sign-in',
    kind: 'signin',
    expiresAt: new Date(Date.now() + 10 * 60_000),
  })
}

describe('a session is a record that can end', () => {
  it('sign-out ends the session on the server, not only the cookie', async () => {
    const { plaintext } = await newKey('u_1')
    const { cookie } = await signIn(plaintext)
    expect((await me(cookie)).statusCode).toBe(200)
    const out = await stack.app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie } })
    expect(String(out.headers['set-cookie'])).toMatch(/tm_session=;/)
    // The same cookie, replayed after sign-out (as a thief would), no longer works.
    expect((await me(cookie)).statusCode).toBe(401)
  })

  it('rotating ADMIN_TOKEN ends every session made from the old token', async () => {
    const { cookie } = await signIn(TEST_ADMIN_TOKEN)
    expect((await me(cookie)).json().role).toBe('admin')
    const live = openLive(`${stack.url.replace('http', 'ws')}/api/live`, {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
    })
    await live.next((m) => m.type === 'snapshot')
    // A restart with a new ADMIN_TOKEN: the process's token changes.
    stack.core.adminToken = 'rotated-admin-token-0123456789'
    try {
      expect((await me(cookie)).statusCode).toBe(401)
      expect((await live.closed).code).toBe(4401)
      const list = await stack.app.inject({
        url: '/api/admin/sessions',
        headers: { authorization: 'Bearer rotated-admin-token-0123456789' },
      })
      const mine = list.json().sessions.filter((s: { source: string }) => s.source === 'admin-token')
      expect(mine.length).toBeGreaterThan(0)
      expect(
        mine.every(
          (s: { status: string; endReason: string }) =>
            s.status === 'ended' && s.endReason === 'admin token rotated',
        ),
      ).toBe(true)
      // The old token is no fingerprint leak: the list never shows it.
      expect(list.body).not.toContain(TEST_ADMIN_TOKEN)
    } finally {
      stack.core.adminToken = TEST_ADMIN_TOKEN
    }
  })

  it('revoking the key a session came from ends it, and an open live socket with it', async () => {
    const { key, plaintext } = await newKey('u_2')
    const { cookie } = await signIn(plaintext)
    const live = openLive(`${stack.url.replace('http', 'ws')}/api/live`, { cookie })
    await live.next((m) => m.type === 'snapshot')
    await stack.app.inject({ method: 'POST', url: `/api/admin/keys/${key.keyId}/revoke`, headers: admin })
    expect((await me(cookie)).statusCode).toBe(401)
    expect((await live.closed).code).toBe(4401)
    const list = (await stack.app.inject({ url: '/api/admin/sessions', headers: admin })).json().sessions
    expect(list.find((s: { sourceId: string }) => s.sourceId === key.keyId)).toMatchObject({
      status: 'ended',
      endReason: 'key revoked',
    })
  })

  it('changing a user role or team ends their sessions', async () => {
    const { plaintext: k1 } = await newKey('u_3')
    const { plaintext: k2 } = await newKey('u_3')
    const a = await signIn(k1)
    const user = stack.core.store.user('u_3')!
    await stack.core.store.upsertUser({ ...user, role: 'lead' })
    expect((await me(a.cookie)).statusCode).toBe(401)
    // A new session carries the new role; moving team ends it again.
    const b = await signIn(k2)
    expect((await me(b.cookie)).json().role).toBe('lead')
    await stack.core.store.upsertUser({ ...user, role: 'lead', teamId: 'team_b' })
    expect((await me(b.cookie)).statusCode).toBe(401)
  })
})

describe('sign-in tokens', () => {
  it('are exchanged once and are never a bearer credential', async () => {
    const { key, plaintext } = await newSignin('u_4')
    const asBearer = await stack.app.inject({
      url: '/api/me',
      headers: { authorization: `Bearer ${plaintext}` },
    })
    expect(asBearer.statusCode).toBe(401)
    const onGateway = await stack.app.inject({
      url: '/v1/models',
      headers: { authorization: `Bearer ${plaintext}` },
    })
    expect(onGateway.statusCode).toBe(401)
    const first = await signIn(plaintext)
    expect(first.res.statusCode).toBe(200)
    expect((await me(first.cookie)).json().userId).toBe('u_4')
    const second = await signIn(plaintext)
    expect(second.res.statusCode).toBe(401)
    expect(second.res.json().error.message).toMatch(/ask an admin for a new one/)
    // Revoking the token (again, through the admin API) ends the session made from it.
    const revoke = await stack.app.inject({
      method: 'POST',
      url: `/api/admin/keys/${key.keyId}/revoke`,
      headers: admin,
    })
    expect(revoke.statusCode).toBe(200)
    expect((await me(first.cookie)).statusCode).toBe(401)
  })

  it('two instances racing on one token leave at most one session', async () => {
    // A second admin store over the same ClickHouse is a second instance's view of it.
    const other = createAdminStore(stack.core.warehouse)
    await other.refresh()
    for (let round = 0; round < 5; round++) {
      const { key } = await newSignin('u_4')
      await other.refresh()
      const base = {
        userId: 'u_4',
        teamId: 'team_a',
        role: 'member' as const,
        createdAt: new Date(),
        expiresAt: new Date(Date.now() + 60_000),
      }
      const results = await Promise.all([
        stack.core.store.exchangeSignin(key.keyId, { ...base, sessionId: `sess_race_a${round}` }),
        other.exchangeSignin(key.keyId, { ...base, sessionId: `sess_race_b${round}` }),
      ])
      expect(results.filter(Boolean).length).toBeLessThanOrEqual(1)
    }
  })
})

describe('shared between instances', () => {
  it('a session made on one instance works on another at once; ending it there holds here after a refresh', async () => {
    const other = createAdminStore(stack.core.warehouse)
    await other.refresh()
    const { plaintext } = await newKey('u_5')
    const { res, cookie } = await signIn(plaintext)
    const sessionId = res.json() && cookie.split('=')[1]!.split('.')[0]!
    expect((await other.loadSession(sessionId))?.userId).toBe('u_5')
    await other.endSession(sessionId, 'ended by an admin')
    await stack.core.store.refresh() // what server mode runs every second
    expect((await me(cookie)).statusCode).toBe(401)
  })
})

describe('admin sessions API', () => {
  it('lists sessions and ends one; non-admins may not', async () => {
    const { plaintext } = await newKey('u_5')
    const { cookie } = await signIn(plaintext)
    const sessionId = cookie.split('=')[1]!.split('.')[0]!
    const forbidden = await stack.app.inject({ url: '/api/admin/sessions', headers: { cookie } })
    expect(forbidden.statusCode).toBe(403)
    const list = (await stack.app.inject({ url: '/api/admin/sessions', headers: admin })).json().sessions
    expect(list.find((s: { sessionId: string }) => s.sessionId === sessionId)).toMatchObject({
      userId: 'u_5',
      who: 'User u_5',
      role: 'member',
      source: 'key',
      status: 'active',
    })
    const end = await stack.app.inject({
      method: 'DELETE',
      url: `/api/admin/sessions/${sessionId}`,
      headers: admin,
    })
    expect(end.statusCode).toBe(200)
    expect(end.json().session).toMatchObject({ status: 'ended', endReason: 'ended by an admin' })
    expect((await me(cookie)).statusCode).toBe(401)
    const missing = await stack.app.inject({
      method: 'DELETE',
      url: '/api/admin/sessions/sess_nope',
      headers: admin,
    })
    expect(missing.statusCode).toBe(404)
  })
})
