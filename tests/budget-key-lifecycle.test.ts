import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAdminStore } from '../services/src/core/identity/admin-store.ts'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

// Revocation and rotation seen by a second instance. Embedded mode allows one
// engine per process, so the second instance is a second AdminStore over the
// same warehouse; in server mode each instance runs exactly this refresh()
// every second (core.ts), which is what bounds "within a second".

let fake: FakeUpstream
let stack: TestStack
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
const chat = async (key: string) =>
  (
    await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'gpt-life', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    })
  ).status

beforeAll(async () => {
  fake = await createFakeUpstream()
  stack = await startTestStack({
    listen: true,
    env: { OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEY: 'sk-up-0000' },
  })
  await admin('POST', '/api/admin/teams', { teamId: 'team-l', name: 'L' })
  await admin('POST', '/api/admin/users', {
    userId: 'user-l',
    email: 'l@example.com',
    name: 'L',
    teamId: 'team-l',
  })
  await admin('PUT', '/api/admin/models/gpt-life', {
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    inputPerM: 1,
    outputPerM: 1,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
})
afterAll(async () => {
  await stack?.close()
  await fake?.close()
})

describe('key revocation and rotation on every instance', () => {
  it('a revoked key is refused at once here and after one refresh on another instance', async () => {
    const other = createAdminStore(stack.core.warehouse)
    const { key, plaintext } = await admin('POST', '/api/admin/keys', { userId: 'user-l', name: 'rev' })
    await other.refresh()
    expect('key' in other.authenticate(plaintext)).toBe(true)
    expect(await chat(plaintext)).toBe(200)

    await admin('POST', `/api/admin/keys/${key.keyId}/revoke`)
    expect(await chat(plaintext)).toBe(401)
    await other.refresh()
    expect(other.authenticate(plaintext)).toEqual({ error: 'revoked' })
  })

  it('rotation: the new key works everywhere, the old one until its grace period ends', async () => {
    const other = createAdminStore(stack.core.warehouse)
    const { key, plaintext: old } = await admin('POST', '/api/admin/keys', { userId: 'user-l', name: 'rot' })
    const rotated = await admin('POST', `/api/admin/keys/${key.keyId}/rotate`, { graceSeconds: 60 })
    expect(rotated.plaintext).not.toBe(old)
    await other.refresh()
    expect(await chat(rotated.plaintext)).toBe(200)
    expect(await chat(old)).toBe(200)
    expect('key' in other.authenticate(rotated.plaintext)).toBe(true)
    expect('key' in other.authenticate(old)).toBe(true)
    expect(other.authenticate(old, new Date(Date.now() + 61_000))).toEqual({ error: 'expired' })

    // Zero grace: the old key stops at once, on both instances.
    const again = await admin('POST', `/api/admin/keys/${rotated.key.keyId}/rotate`, { graceSeconds: 0 })
    expect(await chat(rotated.plaintext)).toBe(401)
    await other.refresh()
    expect(other.authenticate(rotated.plaintext)).toEqual({ error: 'expired' })
    expect('key' in other.authenticate(again.plaintext)).toBe(true)
  })
})
