import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLiveHub } from '../services/src/api/live-hub.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { insertHistory, makeRow, type Org, rng, seedOrg } from './api-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { type LiveClient, openLive } from './live-client.ts'

/**
 * Live mode end to end: a request through the gateway reaches every matching
 * WebSocket subscriber with the right numbers. The recorder's timed flush is
 * set to ten minutes, so an update can only come from the in-memory path
 * (recorder.onRecord), not from ClickHouse: that path is what keeps the
 * latency under a second, and the test proves it is the one taken.
 */
let stack: TestStack
let org: Org
const recorded: UsageRow[] = []

beforeAll(async () => {
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startTestStack({ listen: true, env: { RECORDER_FLUSH_MS: '600000', DEMO: 'true' } })
  org = await seedOrg(stack.core)
  await insertHistory(stack.core, org, 300, 1, 11, Date.now())
  await stack.core.store.upsertModel({
    model: 'sim-chat',
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 2.5,
    outputPerM: 10,
    cachedReadPerM: 1.25,
    cacheWritePerM: 0,
  })
  stack.core.recorder.onRecord((row) => recorded.push(row))
})
afterAll(async () => stack?.close())

const keyHeader = (userId: string) => {
  const key = org.keys.find((k) => k.userId === userId)!
  return { authorization: `Bearer ${org.plaintext.get(key.keyId)}` }
}
const wsUrl = (qs: string) => `${stack.url.replace('http', 'ws')}/api/live?${qs}`
type Snap = {
  type: string
  kpis: Record<string, number>
  series: { series: { points: Record<string, number>[] }[] }
}
const metric = async (name: string) => {
  const text = (
    await stack.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })
  ).body
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
}

describe('live mode', () => {
  it('a gateway request reaches every matching subscriber with the right numbers, once', async () => {
    const clients: Record<string, LiveClient> = {
      leadA1: openLive(wsUrl('range=24h'), keyHeader('u_team_a_lead')),
      leadA2: openLive(wsUrl('range=24h'), keyHeader('u_team_a_lead')),
      memberModel: openLive(wsUrl('range=24h&models=sim-chat'), keyHeader('u_team_a_m1')),
      leadB: openLive(wsUrl('range=24h'), keyHeader('u_team_b_lead')),
    }
    const base: Record<string, Snap> = {}
    for (const [name, c] of Object.entries(clients))
      base[name] = await c.next<Snap>((m) => m.type === 'snapshot')
    // Identical filter + scope share one computation.
    expect(await metric('tokenmeter_live_topics')).toBe(3)
    expect(await metric('tokenmeter_live_subscribers')).toBe(4)

    const res = await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...keyHeader('u_team_a_m1'), 'content-type': 'application/json', 'x-tags': 'live-test' },
      body: JSON.stringify({ model: 'sim-chat', messages: [{ role: 'user', content: 'hello live mode' }] }),
    })
    expect(res.status).toBe(200)
    await res.text()
    const sentAt = Date.now()
    const requestId = res.headers.get('x-request-id')
    const row = recorded.find((r) => r.request_id === requestId)
    expect(row, 'the gateway recorded the request').toBeDefined()
    expect(Number(row!.cost_usd)).toBeGreaterThan(0)

    for (const name of ['leadA1', 'leadA2', 'memberModel']) {
      const before = base[name]!.kpis
      const snap = await clients[name]!.next<Snap>(
        (m) => m.type === 'snapshot' && m.kpis.requests === before.requests! + 1,
      )
      console.log(`live: ${name} saw the request ${Date.now() - sentAt} ms after the response`)
      expect(snap.kpis.inputTokens).toBe(before.inputTokens! + row!.input_tokens)
      expect(snap.kpis.outputTokens).toBe(before.outputTokens! + row!.output_tokens)
      expect(snap.kpis.spendUsd).toBeCloseTo(before.spendUsd! + Number(row!.cost_usd), 9)
      const lastPoint = snap.series.series[0]!.points.at(-1)!
      const lastBefore = base[name]!.series.series[0]!.points.at(-1)!
      expect(lastPoint.requests).toBe(lastBefore.requests! + 1)
    }
    // Not from ClickHouse: the row was still waiting in the recorder.
    expect(stack.core.recorder.stats().pendingRows).toBeGreaterThan(0)
    expect(
      clients.leadB!.messages.every((m) => (m as Snap).kpis.requests === base.leadB!.kpis.requests),
    ).toBe(true)

    // Once flushed, the row is in ClickHouse and leaves the overlay: still counted exactly once.
    await stack.core.recorder.flush()
    for (let i = 0; i < 100 && (await metric('tokenmeter_live_pending_rows')) > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(await metric('tokenmeter_live_pending_rows')).toBe(0)
    const seen = clients.leadA1!.messages.length
    const after = await clients
      .leadA1!.next<Snap>((m) => m.type === 'snapshot' && clients.leadA1!.messages.indexOf(m) >= seen, 15_000)
      .catch(() => clients.leadA1!.messages.at(-1) as Snap)
    expect(after.kpis.requests).toBe(base.leadA1!.kpis.requests! + 1)
    const http = await stack.app.inject({ url: '/api/kpis?range=24h', headers: keyHeader('u_team_a_lead') })
    expect(http.json().requests).toBe(after.kpis.requests)

    for (const c of Object.values(clients)) c.close()
  })

  it('a subscriber can change its filter; bad filters come back as error messages', async () => {
    // Its own sim-chat request, in ClickHouse: this test does not lean on the one before it.
    const res = await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...keyHeader('u_team_a_m1'), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-chat', messages: [{ role: 'user', content: 'narrow me' }] }),
    })
    expect(res.status).toBe(200)
    await res.text()
    await stack.core.recorder.flush()
    const kpis = async (qs: string) =>
      (await stack.app.inject({ url: `/api/kpis?${qs}`, headers: keyHeader('u_team_a_lead') })).json()
        .requests as number
    const [wantAll, wantNarrow] = [await kpis('range=24h'), await kpis('range=24h&models=sim-chat')]
    expect(wantNarrow).toBeGreaterThan(0)
    expect(wantNarrow).toBeLessThan(wantAll)

    const c = openLive(wsUrl('range=24h'), keyHeader('u_team_a_lead'))
    await c.next<Snap>((m) => m.type === 'snapshot' && m.kpis.requests === wantAll)
    c.ws.send(JSON.stringify({ type: 'subscribe', filters: { range: '24h', models: 'sim-chat' } }))
    await c.next<Snap>((m) => m.type === 'snapshot' && m.kpis.requests === wantNarrow)
    c.ws.send(JSON.stringify({ type: 'subscribe', filters: { teams: 'team_b' } }))
    expect(
      (await c.next<{ type: string; error: { code: string } }>((m) => m.type === 'error')).error.code,
    ).toBe('forbidden_filter')
    c.ws.send('not json')
    await c.next<{ type: string; error: { code: string } }>(
      (m) => m.type === 'error' && m.error.code === 'invalid_message',
    )
    c.close()
  })

  it('with no traffic, viewers cost no queries: no push after the first, ClickHouse sees only the hub refreshes', async () => {
    // A fixed window (not a sliding preset), so no bucket moves while nothing happens.
    const day = 86_400_000
    const start = Math.floor(Date.now() / day) * day
    const filter = {
      tz: 'UTC',
      from: new Date(start - day).toISOString(),
      to: new Date(start + 2 * day).toISOString(),
    } as const
    // The hub's own statements, apart from anything else the server runs meanwhile (the alert monitor).
    let hubSelects = 0
    const wh = stack.core.warehouse
    const hub = createLiveHub({
      log: pino({ enabled: false }),
      warehouse: {
        ...wh,
        query: (sql, params, signal) => {
          hubSelects++
          return wh.query(sql, params, signal)
        },
      },
      store: stack.core.store,
      recorder: stack.core.recorder,
      pushMs: 20,
      idleRefreshMs: 100,
    })
    const selects = () => hubSelects
    /** Statements and refreshes over `refreshes` idle refreshes, counted between refreshes. */
    const overRefreshes = async (refreshes: number) => {
      const quiet = () => hub.stats().refreshesRunning === 0 && hub.stats().refreshesQueued === 0
      await expect.poll(quiet, { timeout: 15_000, interval: 5 }).toBe(true)
      const [s0, r0] = [selects(), hub.stats().refreshesStarted]
      await expect
        .poll(() => hub.stats().refreshesStarted >= r0 + refreshes && quiet(), {
          timeout: 30_000,
          interval: 5,
        })
        .toBe(true)
      return { statements: selects() - s0, refreshes: hub.stats().refreshesStarted - r0 }
    }
    const inbox: string[][] = []
    const subscribe = () => {
      const got: string[] = []
      inbox.push(got)
      hub.subscribe(filter, { kind: 'all' }, { send: (m) => got.push(m), bufferedAmount: () => 0 })
    }
    subscribe()
    await expect.poll(() => inbox[0]!.length, { timeout: 15_000 }).toBe(1)
    const one = await overRefreshes(3)
    const perRefresh = one.statements / one.refreshes
    expect(perRefresh).toBeGreaterThan(0)
    for (let i = 0; i < 9; i++) subscribe()
    await expect.poll(() => inbox.every((got) => got.length === 1), { timeout: 15_000 }).toBe(true)
    const ten = await overRefreshes(3)
    // Ten viewers of one filter cost what one does: the hub's refreshes, nothing per viewer.
    expect(ten.statements).toBe(ten.refreshes * perRefresh)
    // And nothing was pushed after the first snapshot: a page re-requests only on a push.
    expect(inbox.map((got) => got.length)).toEqual(inbox.map(() => 1))
    hub.close()
    // The server counts every statement it sends: tokenmeter_clickhouse_queries_total{kind}.
    const sent = wh.statementCounts().select
    expect(sent).toBeGreaterThanOrEqual(hubSelects)
    expect(await metric('tokenmeter_clickhouse_queries_total{kind="select"}')).toBeGreaterThanOrEqual(sent)
  })

  it('a slow subscriber is skipped, then sent only the newest state; the overlay is bounded', async () => {
    const hub = createLiveHub({
      log: pino({ enabled: false }),
      warehouse: stack.core.warehouse,
      store: stack.core.store,
      recorder: stack.core.recorder,
      pushMs: 20,
      maxPendingRows: 10,
    })
    let buffered = 10 * 1024 * 1024
    const sent: string[] = []
    const fast: string[] = []
    const filter = { tz: 'UTC', range: '24h' } as const
    hub.subscribe(filter, { kind: 'all' }, { send: (m) => sent.push(m), bufferedAmount: () => buffered })
    // A reader that always keeps up, on the same topic: what the slow one would have been sent.
    hub.subscribe(filter, { kind: 'all' }, { send: (m) => fast.push(m), bufferedAmount: () => 0 })
    await expect.poll(() => fast.length, { timeout: 15_000 }).toBeGreaterThan(0)
    const requestsIn = (m: string | undefined) =>
      m ? ((JSON.parse(m) as Snap).kpis.requests ?? Number.NaN) : Number.NaN
    const baseline = requestsIn(fast[0])
    const r = rng(5)
    for (let i = 0; i < 50; i++) stack.core.recorder.record(makeRow(org.keys[0]!, Date.now(), r))
    await expect.poll(() => requestsIn(fast.at(-1)), { timeout: 15_000 }).toBeGreaterThan(baseline)
    // Two states went out to the fast reader; none to the one whose socket is full.
    expect(sent).toHaveLength(0)
    expect(hub.stats().pendingRows).toBeLessThanOrEqual(10)
    buffered = 0
    await expect.poll(() => sent.length, { timeout: 15_000 }).toBeGreaterThan(0)
    // Once drained it gets the newest state, not the ones it missed.
    expect(sent.at(-1)).toBe(fast.at(-1))
    expect(sent).not.toContain(fast[0])
    expect(sent.length).toBeLessThan(fast.length)
    hub.close()
    await stack.core.recorder.flush()
  })
})
