import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../services/src/app.ts'
import type { Core } from '../services/src/bootstrap.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/** Issue 13 item 6: one test per hardening item, against the real app on the embedded engine. */
let stack: TestStack
let plaintext: string
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
const METRICS_TOKEN = 'metrics-token-0123456789'

beforeAll(async () => {
  stack = await startTestStack({
    listen: true,
    roles: ['gateway', 'api', 'web'],
    // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
    env: { METRICS_TOKEN, SIGNIN_ATTEMPTS_PER_MIN: '1000', DEMO: 'true' },
  })
  const s = stack.core.store
  await s.upsertTeam({ teamId: 'team_a', name: 'Team A' })
  await s.upsertUser({ userId: 'u_1', email: 'u1@x.io', name: 'User 1', teamId: 'team_a', role: 'member' })
  await s.upsertModel({
    model: 'sim-chat',
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 1,
    outputPerM: 2,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  })
  plaintext = (await s.createKey({ userId: 'u_1', name: 'k' })).plaintext
})
afterAll(async () => stack?.close())

/** Another app over the same Core with some settings changed (one embedded engine per process). */
async function appWith(env: Partial<Core['env']>) {
  const app = await buildApp({ ...stack.core, env: { ...stack.core.env, ...env } }, { roles: ['api'] })
  await app.ready()
  return app
}

/** A real HTTP request whose header bytes are sent as given (UTF-8 on the wire, like curl sends). */
function rawPost(path: string, headers: Record<string, string>, body: string) {
  return new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
    const url = new URL(path, stack.url)
    const wire: Record<string, string> = { 'content-type': 'application/json' }
    // Node writes header strings as latin1: a latin1 view of the UTF-8 bytes puts exactly those bytes on the wire.
    for (const [k, v] of Object.entries(headers)) wire[k] = Buffer.from(v, 'utf8').toString('latin1')
    const req = httpRequest(url, { method: 'POST', headers: wire }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }))
    })
    req.on('error', reject)
    // A Buffer body: with a string body Node would write the header block in the body's encoding.
    req.end(Buffer.from(body))
  })
}

async function storedRow(requestId: string) {
  await expect
    .poll(
      () =>
        stack.core.warehouse.query('SELECT 1 FROM requests WHERE request_id = {id:String}', {
          id: requestId,
        }),
      { timeout: 15_000, interval: 100 },
    )
    .toHaveLength(1)
  const [row] = await stack.core.warehouse.query<{ project: string; client_app: string; tags: string[] }>(
    'SELECT project, client_app, tags FROM requests WHERE request_id = {id:String}',
    { id: requestId },
  )
  return row!
}

describe('dates and paths', () => {
  it.each([
    ['/api/usage?month=0001-01', 'month', '1970-01-01 and 2099-12-31'],
    ['/api/kpis?month=2300-12', 'month', '1970-01-01 and 2099-12-31'],
    ['/api/kpis?from=1800-01-01&to=1800-01-02', 'from', '1970-01-01 and 2099-12-31'],
    ['/api/series?from=2025-02-30&to=2025-03-02', 'from', 'not a calendar date'],
    ['/api/kpis?from=2025-01-01T24:00&to=2025-01-03', 'from', 'not a calendar date'],
  ])('%s is a 400 naming %s', async (url, parameter, message) => {
    const res = await stack.app.inject({ url, headers: admin })
    expect(res.statusCode).toBe(400)
    expect(res.json().error.details?.parameter ?? res.json().error.message).toContain(parameter)
    expect(res.json().error.message).toContain(message)
  })

  it('a path with NUL or control characters is a 400, not a 500', async () => {
    for (const path of ['/%00', '/usage%00x', '/%0a']) {
      const res = await fetch(`${stack.url}${path}`)
      expect(res.status, path).toBe(400)
      expect((await res.json()).error.code).toBe('invalid_path')
    }
    expect((await fetch(`${stack.url}/api/%00`)).status).toBe(404)
  })
})

describe('attribution headers', () => {
  it('are read as UTF-8 and stored without control or bidi characters', async () => {
    const res = await rawPost(
      '/v1/chat/completions',
      {
        authorization: `Bearer ${plaintext}`,
        'x-project': 'café-Übersicht 日本',
        'x-client-app': 'app\u202Egnp.exe\u2066x',
        'x-tags': 'naïve,\u200Fbi\tdi,ok',
      },
      JSON.stringify({ model: 'sim-chat', messages: [{ role: 'user', content: 'hi' }] }),
    )
    expect(res.status).toBe(200)
    const row = await storedRow(String(res.headers['x-request-id']))
    expect(row.project).toBe('café-Übersicht 日本')
    expect(row.client_app).toBe('appgnp.exex')
    expect([...row.tags].sort()).toEqual(['bidi', 'naïve', 'ok'])
  })
})

describe('TRUST_PROXY', () => {
  it('makes the session cookie Secure behind a TLS proxy and sees the client address', async () => {
    const behindTls = { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' }
    const direct = await stack.app.inject({
      method: 'POST',
      url: '/api/session',
      headers: behindTls,
      payload: { token: TEST_ADMIN_TOKEN },
    })
    // Not trusted by default: a client could claim https itself.
    expect(String(direct.headers['set-cookie'])).not.toMatch(/Secure/i)
    const app = await appWith({ TRUST_PROXY: true, API_AUTH_FAILURES_PER_MIN: 2 })
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/api/session',
        headers: behindTls,
        payload: { token: TEST_ADMIN_TOKEN },
      })
      expect(String(res.headers['set-cookie'])).toMatch(/; Secure/i)
      // Client addresses come from X-Forwarded-For: one client's failures do not lock out another.
      const fail = (ip: string) =>
        app.inject({ url: '/api/me', headers: { 'x-forwarded-for': ip, authorization: 'Bearer tm_wrong' } })
      for (let i = 0; i < 2; i++) expect((await fail('198.51.100.1')).statusCode).toBe(401)
      expect((await fail('198.51.100.1')).statusCode).toBe(429)
      expect((await fail('198.51.100.2')).statusCode).toBe(401)
    } finally {
      await app.close()
    }
  })
})

describe('/metrics', () => {
  it('needs METRICS_TOKEN (or ADMIN_TOKEN)', async () => {
    expect((await stack.app.inject({ url: '/metrics' })).statusCode).toBe(401)
    expect(
      (await stack.app.inject({ url: '/metrics', headers: { authorization: 'Bearer nope-nope-nope-nope' } }))
        .statusCode,
    ).toBe(401)
    const ok = await stack.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    })
    expect(ok.statusCode).toBe(200)
    expect(ok.body).toContain('tokenmeter_background_errors_total')
    expect((await stack.app.inject({ url: '/metrics', headers: admin })).statusCode).toBe(200)
  })
})

describe('admin API bounds', () => {
  it('an absurd price or cap is a 400 saying the bound', async () => {
    const price = await stack.app.inject({
      method: 'PUT',
      url: '/api/admin/models/absurd',
      headers: admin,
      payload: { provider: 'openai', upstreamModel: 'x', inputPerM: 1e300, outputPerM: 1 },
    })
    expect(price.statusCode).toBe(400)
    expect(price.json().error.message).toMatch(/inputPerM: .*at most 100000 USD per million tokens/)
    const cap = await stack.app.inject({
      method: 'POST',
      url: '/api/admin/budgets',
      headers: admin,
      payload: { scope: 'user', scopeId: 'u_1', period: 'month', capUsd: 1e12 },
    })
    expect(cap.statusCode).toBe(400)
    expect(cap.json().error.message).toMatch(/capUsd/)
    // The bounds themselves are accepted and stored (the columns hold them).
    const top = await stack.app.inject({
      method: 'PUT',
      url: '/api/admin/models/priciest',
      headers: admin,
      payload: { provider: 'openai', upstreamModel: 'x', inputPerM: 100_000, outputPerM: 100_000 },
    })
    expect(top.statusCode).toBe(200)
    await stack.core.store.refresh()
    expect(stack.core.store.model('priciest')?.inputPerM).toBe(100_000)
  })
})

describe('security headers', () => {
  it('API and dashboard answers carry CSP, frame-ancestors, nosniff and a referrer policy', async () => {
    for (const path of ['/api/me', '/', '/usage']) {
      const res = await fetch(`${stack.url}${path}`, { headers: admin })
      const csp = res.headers.get('content-security-policy') ?? ''
      expect(csp, path).toContain("default-src 'self'")
      expect(csp, path).toContain("frame-ancestors 'none'")
      expect(csp, path).not.toContain("'unsafe-inline' 'self'")
      expect(csp, path).toMatch(/script-src 'self'( 'sha256-[A-Za-z0-9+/=]+')*;/)
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff')
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer')
      expect(res.headers.get('x-frame-options'), path).toBe('DENY')
    }
  })
})

describe('rate limits', () => {
  it('POST /api/session is limited per address; so are failed authentications on /api', async () => {
    const app = await appWith({ SIGNIN_ATTEMPTS_PER_MIN: 3, API_AUTH_FAILURES_PER_MIN: 1000 })
    try {
      const signIn = () => app.inject({ method: 'POST', url: '/api/session', payload: { token: 'tm_guess' } })
      for (let i = 0; i < 3; i++) expect((await signIn()).statusCode).toBe(401)
      const limited = await signIn()
      expect(limited.statusCode).toBe(429)
      expect(limited.json().error).toMatchObject({ code: 'rate_limited' })
      expect(limited.json().error.message).toMatch(/wait \d+ s/)
    } finally {
      await app.close()
    }
    const strict = await appWith({ API_AUTH_FAILURES_PER_MIN: 3 })
    try {
      for (let i = 0; i < 3; i++)
        expect(
          (await strict.inject({ url: '/api/kpis', headers: { cookie: 'tm_session=x.y' } })).statusCode,
        ).toBe(401)
      // Past the limit, guesses and sign-in attempts from that address wait; a valid credential does not.
      const blocked = await strict.inject({ url: '/api/me', headers: { authorization: 'Bearer tm_guess' } })
      expect(blocked.statusCode).toBe(429)
      expect(blocked.json().error.message).toMatch(/Too many failed sign-ins/)
      const signIn = await strict.inject({
        method: 'POST',
        url: '/api/session',
        payload: { token: TEST_ADMIN_TOKEN },
      })
      expect(signIn.statusCode).toBe(429)
      expect((await strict.inject({ url: '/api/me', headers: admin })).statusCode).toBe(200)
    } finally {
      await strict.close()
    }
  })
})

describe('no error swallowed', () => {
  it('a failed budget settle after an answer is logged and counted by where', async () => {
    const budgets = stack.core.budgets
    const settle = budgets.settle
    budgets.settle = async () => {
      throw new Error('injected settle failure')
    }
    try {
      const before = stack.core.backgroundErrors.count('budget_settle')
      const res = await rawPost(
        '/v1/chat/completions',
        { authorization: `Bearer ${plaintext}` },
        JSON.stringify({ model: 'sim-chat', messages: [{ role: 'user', content: 'hi' }] }),
      )
      expect(res.status).toBe(200)
      await expect.poll(() => stack.core.backgroundErrors.count('budget_settle')).toBe(before + 1)
      const metrics = await stack.app.inject({ url: '/metrics', headers: admin })
      expect(metrics.body).toMatch(/tokenmeter_background_errors_total\{where="budget_settle"\} [1-9]/)
    } finally {
      budgets.settle = settle
    }
  })
})
