import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

let stack: TestStack
const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

async function call(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  payload?: object,
  headers = auth,
) {
  const res = await stack.app.inject({ method, url: `/api/admin${url}`, headers, payload })
  return { status: res.statusCode, body: res.body ? res.json() : undefined }
}

beforeAll(async () => {
  stack = await startTestStack({ roles: ['api'] })
  // The user every test makes keys and tokens for, so each test runs alone too.
  await stack.core.store.upsertTeam({ teamId: 'ops', name: 'Ops' })
  await stack.core.store.upsertUser({
    userId: 'mia',
    email: 'mia@example.com',
    name: 'Mia',
    teamId: 'ops',
    role: 'member',
  })
})
afterAll(async () => stack?.close())

describe('admin API', () => {
  it('requires the admin role', async () => {
    expect((await call('GET', '/teams', undefined, {} as typeof auth)).status).toBe(401)
    const { body } = await call('POST', '/keys', { userId: 'mia', name: 'laptop' })
    const asMember = await call('GET', '/keys', undefined, { authorization: `Bearer ${body.plaintext}` })
    expect(asMember.status).toBe(403)
    expect(asMember.body.error.message).toContain('admin')
  })

  it('teams and users, with messages that say what is wrong', async () => {
    const team = await call('POST', '/teams', { name: 'Research' })
    expect(team.status).toBe(201)
    expect(team.body.team.teamId).toMatch(/^team_/)
    const bad = await call('POST', '/users', {
      email: 'not-an-email',
      name: '',
      teamId: team.body.team.teamId,
    })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('invalid_body')
    expect(bad.body.error.message).toMatch(/email.*name/)
    const noTeam = await call('POST', '/users', { email: 'x@example.com', name: 'X', teamId: 'nope' })
    expect(noTeam.status).toBe(400)
    expect(noTeam.body.error.message).toContain('POST /api/admin/teams')
    const user = await call('POST', '/users', {
      email: 'lee@example.com',
      name: 'Lee',
      teamId: team.body.team.teamId,
      role: 'lead',
    })
    expect(user.status).toBe(201)
    const list = await call('GET', '/users')
    expect(list.body.users.map((u: { email: string }) => u.email)).toContain('lee@example.com')
    expect((await call('GET', '/teams')).body.teams.length).toBeGreaterThanOrEqual(2)
  })

  it('keys: plaintext once, prefix only afterwards, revoke, rotate with grace', async () => {
    const created = await call('POST', '/keys', { userId: 'mia', name: 'ci' })
    expect(created.status).toBe(201)
    const { plaintext, key } = created.body
    expect(plaintext).toMatch(/^tm_[A-Za-z0-9]{40}$/)
    expect(key.prefix).toBe(`${plaintext.slice(0, 10)}…`)
    const listed = await call('GET', '/keys')
    const raw = JSON.stringify(listed.body)
    expect(raw).not.toContain(plaintext)
    expect(raw).not.toContain('keyHash')
    expect(listed.body.keys.find((k: { keyId: string }) => k.keyId === key.keyId).status).toBe('active')

    const rotated = await call('POST', `/keys/${key.keyId}/rotate`, { graceSeconds: 600 })
    expect(rotated.status).toBe(201)
    expect(rotated.body.plaintext).not.toBe(plaintext)
    expect('key' in stack.core.store.authenticate(plaintext)).toBe(true)
    expect('key' in stack.core.store.authenticate(rotated.body.plaintext)).toBe(true)
    const inAnHour = new Date(Date.now() + 3600_000)
    expect(stack.core.store.authenticate(plaintext, inAnHour)).toEqual({ error: 'expired' })

    const revoked = await call('POST', `/keys/${rotated.body.key.keyId}/revoke`)
    expect(revoked.body.key.status).toBe('revoked')
    expect(stack.core.store.authenticate(rotated.body.plaintext)).toEqual({ error: 'revoked' })
    expect((await call('POST', '/keys/key_nope/revoke')).status).toBe(404)
    const badGrace = await call('POST', `/keys/${key.keyId}/rotate`, { graceSeconds: -1 })
    expect(badGrace.status).toBe(400)
    expect(badGrace.body.error.message).toContain('graceSeconds')

    // Passthrough is on by default, so any name or pattern may be allowed; only bad syntax is refused.
    const badPattern = await call('POST', '/keys', { userId: 'mia', name: 'x', allowedModels: ['gpt 4o'] })
    expect(badPattern.status).toBe(400)
    expect(badPattern.body.error.message).toContain('allowedModels')
    const patterns = await call('POST', '/keys', {
      userId: 'mia',
      name: 'x',
      allowedModels: ['claude-*', 'ghost'],
    })
    expect(patterns.status).toBe(201)
    expect(patterns.body.key.allowedModels).toEqual(['claude-*', 'ghost'])
  })

  it('model facades: put, list, delete', async () => {
    const put = await call('PUT', '/models/gpt-4o-mini', {
      provider: 'openai',
      upstreamModel: 'gpt-4o-mini-2024-07-18',
      inputPerM: 0.15,
      outputPerM: 0.6,
      cachedReadPerM: 0.075,
    })
    expect(put.status).toBe(200)
    expect(put.body.model).toMatchObject({ model: 'gpt-4o-mini', cacheWritePerM: 0 })
    const bad = await call('PUT', '/models/gpt-x', { provider: 'acme', upstreamModel: 'x', inputPerM: -1 })
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/provider.*inputPerM.*outputPerM/)
    expect((await call('PUT', '/models/bad name', { provider: 'openai' })).status).toBe(400)
    expect((await call('GET', '/models')).body.models.map((m: { model: string }) => m.model)).toEqual([
      'gpt-4o-mini',
    ])
    expect((await call('DELETE', '/models/gpt-4o-mini')).status).toBe(204)
    expect((await call('DELETE', '/models/gpt-4o-mini')).status).toBe(404)
    // Durable: a fresh read of ClickHouse agrees with the cache.
    await stack.core.store.refresh()
    expect(stack.core.store.models()).toEqual([])
  })

  it('sign-in tokens are short-lived, of kind signin, and not listed as keys', async () => {
    const res = await call('POST', '/signin-tokens', { userId: 'mia' })
    expect(res.status).toBe(201)
    expect(res.body.token).toMatch(/^tms_/)
    const ttl = Date.parse(res.body.expiresAt) - Date.now()
    expect(ttl).toBeGreaterThan(60_000)
    expect(ttl).toBeLessThanOrEqual(15 * 60_000)
    const auth = stack.core.store.authenticate(res.body.token)
    expect('key' in auth && auth.key.kind).toBe('signin')
    expect(JSON.stringify((await call('GET', '/keys')).body)).not.toContain(res.body.token.slice(0, 10))
    expect((await call('POST', '/signin-tokens', { userId: 'ghost' })).status).toBe(400)
  })
})
