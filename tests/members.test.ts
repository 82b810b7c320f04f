import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAdminStore } from '../services/src/core/identity/admin-store.ts'
import type { ApiKey } from '../services/src/core/identity/entities.ts'
import { insertHistory, type Org, seedOrg } from './api-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * What members see and do for themselves (seed 001): the models their keys
 * reach, the keys they own and revoking one, and the leaderboard under the
 * admin's visibility setting. Above all: nobody sees a key that is not theirs.
 */
let stack: TestStack
let org: Org
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }

beforeAll(async () => {
  // The keys call the built-in simulated provider, which runs only with DEMO=true.
  stack = await startTestStack({ listen: true, env: { DEMO: 'true' } })
  org = await seedOrg(stack.core)
  await insertHistory(stack.core, org, 400, 5, 14, Date.now())
  const s = stack.core.store
  await s.upsertModel({
    model: 'sim-1',
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 0.5,
    outputPerM: 1.5,
    cachedReadPerM: 0.05,
    cacheWritePerM: 0,
  })
  await s.upsertModel({
    model: 'house-claude',
    provider: 'anthropic',
    upstreamModel: 'claude-sonnet-4-5',
    inputPerM: 0,
    outputPerM: 0,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
    priceFromCatalogue: true,
  })
  // Served by an upstream this gateway does not configure: nobody can call it, so nobody sees it.
  await s.upsertModel({
    model: 'eu-gpt',
    provider: 'azure-eu',
    upstreamModel: 'gpt-4o',
    inputPerM: 1,
    outputPerM: 2,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
})
afterAll(async () => stack?.close())

const keysOf = (userId: string) => org.keys.filter((k) => k.userId === userId)
const bearerOf = (key: ApiKey) => ({ authorization: `Bearer ${org.plaintext.get(key.keyId)}` })
const as = (userId: string) => bearerOf(keysOf(userId)[0]!)

async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, headers: object, body?: unknown) {
  const res = await stack.app.inject({
    method,
    url,
    headers: headers as Record<string, string>,
    payload: body as never,
  })
  return { status: res.statusCode, body: res.body, json: () => res.json() }
}

async function chat(key: ApiKey, model: string): Promise<number> {
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...bearerOf(key), 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  })
  await res.text()
  return res.status
}

interface ModelEntry {
  model: string
  source: string
  prices: { inputPerM: number; outputPerM: number } | null
  keyIds: string[]
}

describe('available models', () => {
  it("lists what each of the caller's keys may call, with prices, and no one else's keys", async () => {
    const [gptOnly, any] = keysOf('u_team_a_m1')
    await stack.core.store.setAllowedModels(gptOnly!.keyId, ['gpt-*'])
    const mine = (await call('GET', '/api/models', bearerOf(any!))).json()
    expect(mine.keys.map((k: { keyId: string }) => k.keyId).sort()).toEqual(
      [gptOnly!.keyId, any!.keyId].sort(),
    )
    const byName = new Map<string, ModelEntry>(mine.models.map((m: ModelEntry) => [m.model, m]))
    // Facades first, with the admin's price; a facade priced from the catalogue shows the catalogue's.
    expect(byName.get('sim-1')).toMatchObject({
      source: 'facade',
      prices: { inputPerM: 0.5, outputPerM: 1.5 },
    })
    expect(byName.get('sim-1')!.keyIds).toEqual([any!.keyId])
    expect(byName.get('house-claude')!.prices!.inputPerM).toBeGreaterThan(0)
    expect(byName.has('eu-gpt')).toBe(false)
    // Passthrough is on by default: catalogue models are callable by name, priced from the catalogue.
    const gpt41 = byName.get('gpt-4.1')!
    expect(gpt41.source).toBe('catalogue')
    expect(gpt41.prices!.outputPerM).toBeGreaterThan(0)
    expect(gpt41.keyIds.sort()).toEqual([gptOnly!.keyId, any!.keyId].sort())
    expect(mine.models.findIndex((m: ModelEntry) => m.source === 'catalogue')).toBeGreaterThan(
      mine.models.findLastIndex((m: ModelEntry) => m.source === 'facade'),
    )

    // A member whose only key is limited sees only what it reaches, and the gateway agrees.
    const [only] = keysOf('u_team_b_m1')
    const limitedKeys = keysOf('u_team_b_m1')
    for (const k of limitedKeys) await stack.core.store.setAllowedModels(k.keyId, ['sim-*', 'claude-*'])
    const limited = (await call('GET', '/api/models', bearerOf(only!))).json()
    const names: string[] = limited.models.map((m: ModelEntry) => m.model)
    expect(names).toContain('sim-1')
    expect(names.some((n) => n.startsWith('claude-'))).toBe(true)
    expect(names.filter((n) => !n.startsWith('sim-') && !n.startsWith('claude-'))).toEqual([])
    expect(await chat(only!, 'sim-1')).toBe(200)
    expect(await chat(only!, 'gpt-4o')).toBe(403)

    // The bootstrap admin token owns no key: it sees what the gateway serves, with no key ids.
    const all = (await call('GET', '/api/models', admin)).json()
    expect(all.keys).toEqual([])
    expect(all.models.every((m: ModelEntry) => m.keyIds.length === 0)).toBe(true)
    expect(all.models.map((m: ModelEntry) => m.model)).toContain('gpt-4o-mini')
  })

  it('needs a sign-in', async () => {
    const res = await call('GET', '/api/models', {})
    expect(res.status).toBe(401)
  })
})

describe('own API keys', () => {
  it('a member sees exactly their own keys, by prefix, never a full key and never another key', async () => {
    for (const userId of ['u_team_a_m2', 'u_team_b_lead', 'u_admin']) {
      const res = await call('GET', '/api/me/keys', as(userId))
      expect(res.status).toBe(200)
      const ids = res.json().keys.map((k: { keyId: string }) => k.keyId)
      // A lead and an admin see their own keys here too, not their team's or everyone's.
      expect(ids.sort(), userId).toEqual(
        keysOf(userId)
          .map((k) => k.keyId)
          .sort(),
      )
      for (const secret of org.plaintext.values()) expect(res.body).not.toContain(secret)
      for (const k of res.json().keys)
        expect(k.prefix).toBe(org.keys.find((o) => o.keyId === k.keyId)!.keyPrefix)
    }
    expect((await call('GET', '/api/me/keys', admin)).json().keys).toEqual([])
  })

  it("shows each key's spend as /api/keys/spend does, and its cap", async () => {
    const key = keysOf('u_team_c_m1')[0]!
    const budget = await call('POST', '/api/admin/budgets', admin, {
      scope: 'key',
      scopeId: key.keyId,
      period: 'month',
      capUsd: 50,
    })
    expect(budget.status).toBe(201)
    const mine = (await call('GET', '/api/me/keys?range=7d', as('u_team_c_m1'))).json()
    const spend = (await call('GET', `/api/keys/spend?range=7d&keys=${key.keyId}`, as('u_team_c_m1'))).json()
    const k = mine.keys.find((x: { keyId: string }) => x.keyId === key.keyId)
    expect(k).toMatchObject({
      status: 'active',
      spentUsd: spend.keys[0].spentUsd,
      capUsd: 50,
      period: 'month',
      periodSpentUsd: spend.keys[0].periodSpentUsd,
    })
    expect(k.spentUsd).toBeGreaterThan(0)
    // Filters name only what the caller may see; a lead's filter on a teammate's key finds none of theirs.
    const other = keysOf('u_team_c_m2')[0]!
    expect((await call('GET', `/api/me/keys?keys=${other.keyId}`, as('u_team_c_m1'))).status).toBe(403)
    const lead = await call('GET', `/api/me/keys?keys=${other.keyId}`, as('u_team_c_lead'))
    expect(lead.status).toBe(200)
    expect(lead.json().keys).toEqual([])
  })

  it("revoking: someone else's key is 404 for every role but an admin's own, one's own key stops at once", async () => {
    const victim = keysOf('u_team_c_m2')[0]!
    for (const userId of ['u_team_c_m1', 'u_team_c_lead', 'u_team_a_m1']) {
      const res = await call('POST', `/api/me/keys/${victim.keyId}/revoke`, as(userId))
      expect(res.status, userId).toBe(404)
      expect(res.json().error.code).toBe('not_found')
    }
    expect(
      (await call('POST', '/api/me/keys/key_that_does_not_exist/revoke', as('u_team_c_m1'))).status,
    ).toBe(404)
    expect(await chat(victim, 'sim-1')).toBe(200)

    const [own, spare] = keysOf('u_team_c_m2')
    const res = await call('POST', `/api/me/keys/${own!.keyId}/revoke`, bearerOf(spare!))
    expect(res.status).toBe(200)
    expect(res.json().key).toMatchObject({ keyId: own!.keyId, status: 'revoked' })
    expect(await chat(own!, 'sim-1')).toBe(401)
    const listed = (await call('GET', '/api/me/keys', bearerOf(spare!))).json().keys
    expect(listed.find((k: { keyId: string }) => k.keyId === own!.keyId).status).toBe('revoked')
    // Again: idempotent.
    expect((await call('POST', `/api/me/keys/${own!.keyId}/revoke`, bearerOf(spare!))).status).toBe(200)
  })

  it('says which key a web session was opened with', async () => {
    const key = keysOf('u_team_b_m2')[1]!
    const signin = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { token: org.plaintext.get(key.keyId) },
    })
    expect(signin.statusCode).toBe(200)
    const cookie = signin.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
    const keys = (await call('GET', '/api/me/keys', { cookie })).json().keys
    expect(
      keys.filter((k: { signedInWith: boolean }) => k.signedInWith).map((k: { keyId: string }) => k.keyId),
    ).toEqual([key.keyId])
  })
})

describe("a key's allowed models, set by an admin", () => {
  it('PATCH changes them in place; the gateway and the key card follow; only admins may', async () => {
    const key = keysOf('u_team_a_m2')[1]!
    expect(await chat(key, 'sim-1')).toBe(200)
    const res = await call('PATCH', `/api/admin/keys/${key.keyId}`, admin, { allowedModels: ['gpt-4o*'] })
    expect(res.status).toBe(200)
    expect(res.json().key).toMatchObject({
      keyId: key.keyId,
      prefix: key.keyPrefix,
      allowedModels: ['gpt-4o*'],
    })
    expect(await chat(key, 'sim-1')).toBe(403)
    const card = (await call('GET', `/api/keys/spend?keys=${key.keyId}`, as('u_team_a_m2'))).json().keys[0]
    expect(card.allowedModels).toEqual(['gpt-4o*'])
    // Back to every model.
    expect((await call('PATCH', `/api/admin/keys/${key.keyId}`, admin, { allowedModels: [] })).status).toBe(
      200,
    )
    expect(await chat(key, 'sim-1')).toBe(200)

    const bad = await call('PATCH', `/api/admin/keys/${key.keyId}`, admin, { allowedModels: ['gpt 4o'] })
    expect(bad.status).toBe(400)
    expect(bad.json().error.message).toContain('allowedModels')
    expect((await call('PATCH', '/api/admin/keys/nope', admin, { allowedModels: [] })).status).toBe(404)
    expect(
      (await call('PATCH', `/api/admin/keys/${key.keyId}`, as('u_team_a_lead'), { allowedModels: [] }))
        .status,
    ).toBe(403)
  })

  it('creating a key with allowedModels shows them in the admin list', async () => {
    const res = await call('POST', '/api/admin/keys', admin, {
      userId: 'u_team_b_m1',
      name: 'claude only',
      allowedModels: ['claude-*', 'sim-1'],
    })
    expect(res.status).toBe(201)
    const list = (await call('GET', '/api/admin/keys', admin)).json().keys
    expect(list.find((k: { keyId: string }) => k.keyId === res.json().key.keyId).allowedModels).toEqual([
      'claude-*',
      'sim-1',
    ])
  })
})

interface Board {
  ranked: string
  rows: { id: string; canOpen: boolean }[]
}

describe('leaderboard visibility', () => {
  const board = async (who: object, by: string) => {
    const res = await call('GET', `/api/leaderboard?by=${by}&limit=100&range=7d`, who)
    return { status: res.status, json: () => res.json() as Board, code: () => res.json().error?.code }
  }
  const setVisibility = (value: string, who: object = admin) =>
    call('PUT', '/api/admin/settings', who, { leaderboardVisibility: value })
  const teamOf = (userId: string) => org.users.find((u) => u.userId === userId)!.teamId

  it('by default ranks users and teams network-wide for everyone, keys only within what one may see', async () => {
    expect((await call('GET', '/api/admin/settings', admin)).json()).toEqual({
      settings: { leaderboardVisibility: 'everyone' },
    })
    const users = (await board(as('u_team_a_m1'), 'user')).json()
    expect(users.ranked).toBe('network')
    const teams = new Set(users.rows.map((r) => teamOf(r.id)))
    expect(teams.size).toBe(3)
    // Only their own row opens a detail page (others' would be refused).
    expect(users.rows.filter((r) => r.canOpen).map((r) => r.id)).toEqual(['u_team_a_m1'])
    const byTeam = (await board(as('u_team_a_m1'), 'team')).json()
    expect(byTeam.rows.map((r) => r.id).sort()).toEqual(org.teams)
    const keys = (await board(as('u_team_a_m1'), 'key')).json()
    expect(keys.ranked).toBe('own')
    const own = new Set(keysOf('u_team_a_m1').map((k) => k.keyId))
    expect(keys.rows.length).toBeGreaterThan(0)
    expect(keys.rows.every((r) => own.has(r.id) && r.canOpen)).toBe(true)
    const leadKeys = (await board(as('u_team_b_lead'), 'key')).json()
    expect(leadKeys.ranked).toBe('team')
    expect(leadKeys.rows.every((r) => org.keys.find((k) => k.keyId === r.id)!.teamId === 'team_b')).toBe(true)
  })

  it("'team' limits members and leads to their own team; 'admins' refuses them; admins always see all", async () => {
    expect((await setVisibility('team')).json()).toEqual({ settings: { leaderboardVisibility: 'team' } })
    for (const userId of ['u_team_b_m1', 'u_team_b_lead']) {
      const users = (await board(as(userId), 'user')).json()
      expect(users.ranked).toBe('team')
      expect(users.rows.length).toBeGreaterThan(1)
      expect(
        users.rows.every((r) => teamOf(r.id) === 'team_b'),
        userId,
      ).toBe(true)
      expect((await board(as(userId), 'team')).json().rows.map((r) => r.id)).toEqual(['team_b'])
    }
    const adminView = (await board(as('u_admin'), 'user')).json()
    expect(adminView.ranked).toBe('network')
    expect(new Set(adminView.rows.map((r) => teamOf(r.id))).size).toBe(3)

    await setVisibility('admins')
    for (const userId of ['u_team_b_m1', 'u_team_b_lead']) {
      for (const by of ['user', 'team', 'key']) {
        const res = await board(as(userId), by)
        expect(res.status, `${userId} ${by}`).toBe(403)
        expect(res.code()).toBe('leaderboard_restricted')
      }
    }
    expect((await board(admin, 'user')).status).toBe(200)
    await setVisibility('everyone')
    expect((await board(as('u_team_b_m1'), 'user')).json().ranked).toBe('network')
  })

  it('only admins change it; a bad value is a 400 naming the field; it is stored for every instance', async () => {
    const refused = await setVisibility('team', as('u_team_a_lead'))
    expect(refused.status).toBe(403)
    const bad = await setVisibility('friends')
    expect(bad.status).toBe(400)
    expect(bad.json().error.message).toContain('leaderboardVisibility')
    const unknownField = await call('PUT', '/api/admin/settings', admin, { leaderboard: 'team' })
    expect(unknownField.status).toBe(400)

    await setVisibility('team')
    // Another instance reads the admin tables from ClickHouse: it sees the same setting.
    const other = createAdminStore(stack.core.warehouse)
    await other.refresh()
    expect(other.setting('leaderboard_visibility')).toBe('team')
    await setVisibility('everyone')
  })

  it('a stored value this release does not know restricts to admins rather than opening up', async () => {
    await stack.core.store.putSetting('leaderboard_visibility', 'partners-only')
    expect((await board(as('u_team_a_m1'), 'user')).status).toBe(403)
    expect((await call('GET', '/api/admin/settings', admin)).json().settings.leaderboardVisibility).toBe(
      'admins',
    )
    await setVisibility('everyone')
    expect((await board(as('u_team_a_m1'), 'user')).status).toBe(200)
  })
})
