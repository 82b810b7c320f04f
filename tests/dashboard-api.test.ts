import { AsyncLocalStorage } from 'node:async_hooks'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { createAlertStore } from '../services/src/alerts/alert-store.ts'
import { createInflight } from '../services/src/api/inflight.ts'
import { createLiveHub } from '../services/src/api/live-hub.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { liveRow, type SeededOrg, seedOrg } from './helpers/web-fixtures.ts'

// The API behind the dashboard's alerts panel and live mode, over the real
// embedded engine: who sees which alert, acknowledgements that last, live
// pushes only on change, and identical concurrent queries run once.

let stack: TestStack
let org: SeededOrg

beforeAll(async () => {
  // The anomaly detector stays quiet (its timer is an hour) so the statement counter is
  // the usage routes' alone; answers are kept long enough that no step depends on speed.
  stack = await startTestStack({
    roles: ['api'],
    env: { ALERT_CHECK_MS: '3600000', USAGE_ANSWER_KEEP_MS: '60000' },
  })
  org = await seedOrg(stack.core, { days: 3 })
})
afterAll(async () => stack?.close())

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const keyOf = (name: string) => org.keys.find((k) => k.name === name)!

describe('alerts panel API', () => {
  it('leads see their team, members none; an acknowledgement is kept, for everyone', async () => {
    const store = createAlertStore(stack.core.warehouse)
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString()
    const candidate = (keyId: string) => ({
      kind: 'spike' as const,
      subjectType: 'key' as const,
      subjectId: keyId,
      windowStart: hour,
      level: 0,
      severity: 'critical' as const,
      message: 'Spike on a quiet key',
      valueUsd: 12,
      baselineUsd: 0.5,
      details: { keyId },
    })
    const platform = (await store.insertIfNew(candidate(keyOf('ada-ci').keyId)))!
    const research = (await store.insertIfNew(candidate(keyOf('grace-eval').keyId)))!
    const ada = bearer(keyOf('ada-cursor').plaintext)

    const mine = await stack.app.inject({ url: '/api/alerts', headers: ada })
    expect(mine.statusCode).toBe(200)
    const ids = mine.json().alerts.map((a: { alertId: string }) => a.alertId)
    expect(ids).toContain(platform.alertId)
    expect(ids).not.toContain(research.alertId)
    expect(mine.json().alerts[0]).toMatchObject({
      keyName: 'ada-ci',
      teamId: 'team-platform',
      acknowledgedAt: null,
    })

    const member = await stack.app.inject({
      url: '/api/alerts',
      headers: bearer(keyOf('alan-laptop').plaintext),
    })
    expect(member.statusCode).toBe(403)

    const other = await stack.app.inject({
      method: 'POST',
      url: `/api/alerts/${research.alertId}/ack`,
      headers: ada,
    })
    expect(other.statusCode).toBe(404)
    const bad = await stack.app.inject({ method: 'POST', url: '/api/alerts/not-an-id/ack', headers: ada })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().error.message).toContain('32 hex')

    const ack = await stack.app.inject({
      method: 'POST',
      url: `/api/alerts/${platform.alertId}/ack`,
      headers: ada,
    })
    expect(ack.statusCode).toBe(200)
    expect(ack.json().alert).toMatchObject({ acknowledgedBy: 'u-ada' })
    expect(ack.json().alert.acknowledgedAt).toEqual(expect.any(String))

    // Admin view, open only: the acknowledged one is gone; with state=all it is there, acknowledged.
    const admin = bearer(TEST_ADMIN_TOKEN)
    const open = await stack.app.inject({ url: '/api/alerts?state=open', headers: admin })
    const openIds = open.json().alerts.map((a: { alertId: string }) => a.alertId)
    expect(openIds).toContain(research.alertId)
    expect(openIds).not.toContain(platform.alertId)

    // A later webhook delivery writes a new version of the row: the acknowledgement survives it.
    const stored = (await store.get(platform.alertId))!
    await store.markNotified(stored)
    const again = (await createAlertStore(stack.core.warehouse).get(platform.alertId))!
    expect(again.notifiedAt).not.toBeNull()
    expect(again.acknowledgedBy).toBe('u-ada')
    expect(again.details).toEqual({ keyId: keyOf('ada-ci').keyId })
  })
})

describe('live pushes', () => {
  it('an idle refresh that finds the same numbers pushes nothing; a new row pushes once', async () => {
    const hub = createLiveHub({
      log: pino({ enabled: false }),
      warehouse: stack.core.warehouse,
      store: stack.core.store,
      recorder: stack.core.recorder,
      pushMs: 20,
      idleRefreshMs: 50,
      busyRefreshMs: 50,
    })
    const sent: string[] = []
    hub.subscribe(
      { tz: 'UTC', range: '24h' },
      { kind: 'all' },
      { send: (m) => sent.push(m), bufferedAmount: () => 0 },
    )
    await expect.poll(() => sent.length).toBe(1)
    const refreshes = hub.stats().refreshesStarted
    await expect
      .poll(() => hub.stats().refreshesStarted, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(refreshes + 3)
    expect(sent.length).toBe(1)

    stack.core.recorder.record(liveRow(keyOf('ken-cli')))
    await expect.poll(() => sent.length).toBeGreaterThanOrEqual(2)
    const last = JSON.parse(sent.at(-1)!)
    expect(last.kpis.requests).toBe(JSON.parse(sent[0]!).kpis.requests + 1)
    hub.close()
    // A refresh already running goes on issuing its queries: let it end, so that
    // the tests after this one count only their own queries.
    await expect.poll(() => hub.stats().refreshesRunning).toBe(0)
    await stack.core.recorder.flush()
  })

  it('identical requests one after another cost one query until new usage is written; scopes never share', async () => {
    const url = '/api/series?range=7d&tz=UTC&split=model'
    const get = async (token: string) => {
      const res = await stack.app.inject({ url, headers: bearer(token) })
      expect(res.statusCode, res.body).toBe(200)
      return res.body
    }
    const requests = (body: string) =>
      (JSON.parse(body) as { series: { points: { requests: number }[] }[] }).series
        .flatMap((s) => s.points)
        .reduce((n, p) => n + p.requests, 0)
    // Counts the queries these requests start, not the process's background
    // ones (budget spend, alerts, a live refresh): each query is counted in
    // the async context of the request that started it.
    const tallies = new AsyncLocalStorage<{ queries: number }>()
    const warehouse = stack.core.warehouse
    const query = warehouse.query
    warehouse.query = ((...args: Parameters<typeof query>) => {
      const tally = tallies.getStore()
      if (tally) tally.queries++
      return query.apply(warehouse, args)
    }) as typeof query
    onTestFinished(() => {
      warehouse.query = query
    })
    const costOf = async (run: () => Promise<unknown>) => {
      const tally = { queries: 0 }
      await tallies.run(tally, run)
      return tally.queries
    }
    const newRow = async () => {
      stack.core.recorder.record(liveRow(keyOf('ken-cli')))
      await stack.core.recorder.flush()
    }

    await newRow()
    let first = ''
    const perRequest = await costOf(async () => {
      first = await get(TEST_ADMIN_TOKEN)
    })
    expect(perRequest).toBeGreaterThan(0)
    // Sequential, not overlapping: only a kept answer can spare these their queries.
    const repeats = await costOf(async () => {
      for (let i = 0; i < 9; i++) expect(await get(TEST_ADMIN_TOKEN)).toBe(first)
    })
    expect(repeats).toBe(0)

    // Another scope (a lead sees her team) runs its own query, then shares it with itself only.
    const lead = keyOf('ada-cursor').plaintext
    let team = ''
    expect(
      await costOf(async () => {
        team = await get(lead)
      }),
    ).toBe(perRequest)
    expect(requests(team)).toBeLessThan(requests(first))
    expect(await costOf(async () => expect(await get(lead)).toBe(team))).toBe(0)
    expect(await costOf(async () => expect(await get(TEST_ADMIN_TOKEN)).toBe(first))).toBe(0)

    // New usage written: the next request queries again and sees it; the one after shares it.
    await newRow()
    let after = ''
    expect(
      await costOf(async () => {
        after = await get(TEST_ADMIN_TOKEN)
      }),
    ).toBe(perRequest)
    expect(requests(after)).toBe(requests(first) + 1)
    expect(await costOf(async () => expect(await get(TEST_ADMIN_TOKEN)).toBe(after))).toBe(0)
  })

  it('identical queries in flight at once run once', async () => {
    const inflight = createInflight()
    let runs = 0
    const slow = () =>
      new Promise<number>((resolve) => {
        runs++
        setImmediate(() => resolve(runs))
      })
    const answers = await Promise.all(Array.from({ length: 10 }, () => inflight.share('k', slow)))
    expect(runs).toBe(1)
    expect(new Set(answers)).toEqual(new Set([1]))
    expect(inflight.size()).toBe(0)
    await inflight.share('k', slow)
    expect(runs).toBe(2)
  })

  it('a query that started before the data changed serves no request that came after the change', async () => {
    let version = 1
    const inflight = createInflight({ keepMs: 1_000, dataVersion: () => version, now: () => 0 })
    const release: (() => void)[] = []
    let runs = 0
    const run = async () => {
      const n = ++runs
      await new Promise<void>((resolve) => release.push(resolve))
      return n
    }
    const before = inflight.share('k', run)
    version = 2 // a write finished while the first query ran
    const after = inflight.share('k', run)
    expect(runs).toBe(2)
    // The newer query ends first; the older one, ending later, does not replace its kept answer.
    release[1]!()
    expect(await after).toBe(2)
    release[0]!()
    expect(await before).toBe(1)
    expect(await inflight.share('k', run)).toBe(2)
    expect(runs).toBe(2)
    expect(inflight.size()).toBe(0)
  })

  it('a kept answer lasts while its data version and age allow; failures are not kept; size is bounded', async () => {
    let clock = 0
    let version = 1
    const kept = createInflight({
      keepMs: 1_000,
      maxEntries: 2,
      dataVersion: () => version,
      now: () => clock,
    })
    let runs = 0
    const run = async () => ++runs
    expect(await kept.share('a', run)).toBe(1)
    clock = 999
    expect(await kept.share('a', run)).toBe(1)
    clock = 1_000
    expect(await kept.share('a', run)).toBe(2)
    version = 2
    expect(await kept.share('a', run)).toBe(3)
    await expect(kept.share('b', () => Promise.reject(new Error('down')))).rejects.toThrow('down')
    expect(await kept.share('b', run)).toBe(4)
    expect(await kept.share('c', run)).toBe(5)
    expect(await kept.share('d', run)).toBe(6)
    expect(kept.keptSize()).toBe(2)
    // 'b' was the least recently used: dropped, so it runs again.
    expect(await kept.share('b', run)).toBe(7)
  })
})
