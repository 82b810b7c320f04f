import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Alert } from '../services/src/alerts/alert.ts'
import { createAlertMonitor } from '../services/src/alerts/alert-monitor.ts'
import { createAlertStore } from '../services/src/alerts/alert-store.ts'
import {
  ALERT_ID_HEADER,
  createWebhookNotifier,
  SIGNATURE_HEADER,
  verifySignature,
} from '../services/src/alerts/webhook-notifier.ts'
import { insertHourly, normalDay } from './alerts-fixtures.ts'
import { budget } from './budget-fixtures.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

const DAY = 86_400_000
const HOUR = 3_600_000
const MARCH = Date.parse('2025-03-01T00:00:00Z')
const APRIL = Date.parse('2025-04-01T00:00:00Z')
const SECRET = 'whsec_test_0123456789'

let stack: TestStack
let receiver: { url: string; close(): Promise<void> }
const received: { id: string; body: string; signature: string }[] = []
let flakyFailures = 0

beforeAll(async () => {
  stack = await startTestStack()
  // A webhook receiver whose /flaky path fails the first two attempts of every alert.
  const failuresLeft = new Map<string, number>()
  const srv = createServer(async (req: IncomingMessage, res) => {
    let body = ''
    for await (const chunk of req) body += chunk
    const id = String(req.headers[ALERT_ID_HEADER])
    if (req.url === '/flaky') {
      const left = failuresLeft.get(id) ?? 2
      failuresLeft.set(id, left - 1)
      if (left > 0) {
        flakyFailures++
        res.writeHead(500).end()
        return
      }
    }
    received.push({ id: `${req.url} ${id}`, body, signature: String(req.headers[SIGNATURE_HEADER]) })
    res.writeHead(204).end()
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address() as AddressInfo
  receiver = {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => srv.close(() => r())),
  }
})
afterAll(async () => {
  await receiver?.close()
  await stack?.close()
})

function monitor() {
  const { core } = stack
  return createAlertMonitor({
    warehouse: core.warehouse,
    store: core.store,
    alerts: createAlertStore(core.warehouse),
    notifier: createWebhookNotifier({
      urls: [`${receiver.url}/ok`, `${receiver.url}/flaky`],
      secret: SECRET,
      baseDelayMs: 5,
      log: pino({ enabled: false }),
    }),
    log: pino({ enabled: false }),
  })
}

/** What a month of minute-by-minute detection finds: hours and days backfilled, budgets checked at every noon. */
async function runMonth(m: ReturnType<typeof monitor>): Promise<Alert[]> {
  const found = await m.runOnce(APRIL - 1, { sinceMs: MARCH })
  for (let day = MARCH; day < APRIL; day += DAY) found.push(...(await m.runOnce(day + 12 * HOUR)))
  return found
}

describe('anomaly alerts', () => {
  it('stay silent on a normal month', async () => {
    const { core } = stack
    const totals: number[] = []
    for (const [i, keyId] of ['key_normal_a', 'key_normal_b', 'key_normal_c'].entries()) {
      totals.push(
        await insertHourly(core.warehouse, keyId, MARCH - 14 * DAY, APRIL, normalDay(0.5 + i, 10 + i)),
      )
    }
    // Budgets sized like an admin would: comfortably above a normal month.
    await core.store.upsertBudget(
      budget({ budgetId: 'b_normal_a', scopeId: 'key_normal_a', capUsd: 2.5 * totals[0]! }),
    )
    await core.store.upsertBudget(
      budget({
        budgetId: 'b_normal_b',
        scopeId: 'key_normal_b',
        capUsd: 3 * (totals[1]! / 45) * 7,
        period: 'week',
      }),
    )
    const found = await runMonth(monitor())
    expect(found).toEqual([])
  })

  it('fire once per kind on months made to show each', async () => {
    const { core } = stack
    // Quiet key: five cents an hour, then one $3 hour.
    const spikeAt = Date.parse('2025-03-20T14:00:00Z')
    await insertHourly(core.warehouse, 'key_spike', MARCH - 14 * DAY, APRIL, (t) =>
      t === spikeAt ? 3.05 : 0.05,
    )
    // Steady key at $12 a day, then a day at 8x that, spread evenly (no single hour spikes).
    const runawayDay = Date.parse('2025-03-25T00:00:00Z')
    await insertHourly(core.warehouse, 'key_runaway', MARCH - 14 * DAY, APRIL, (t) =>
      t >= runawayDay && t < runawayDay + DAY ? 4 : 0.5,
    )
    // $4.80 a day against a $100 monthly cap: on course to run out around the 21st.
    await insertHourly(core.warehouse, 'key_forecast', MARCH, APRIL, () => 0.2)
    await core.store.upsertBudget(
      budget({ budgetId: 'b_forecast', scopeId: 'key_forecast', capUsd: 100, thresholds: [80] }),
    )

    const found = await runMonth(monitor())
    const summary = found.map((a) => `${a.kind} ${a.subjectId} ${a.windowStart} ${a.level}`).sort()
    expect(summary).toEqual([
      'forecast b_forecast 2025-03-01T00:00:00.000Z 0',
      'runaway_day key_runaway 2025-03-25T00:00:00.000Z 0',
      'spike key_spike 2025-03-20T14:00:00.000Z 0',
      'threshold b_forecast 2025-03-01T00:00:00.000Z 80',
    ])

    // Stored once each, and a second pass over the same month finds nothing new.
    expect(await runMonth(monitor())).toEqual([])
    const stored = await createAlertStore(core.warehouse).list()
    expect(stored.map((a) => a.kind).sort()).toEqual(['forecast', 'runaway_day', 'spike', 'threshold'])
    expect(stored.every((a) => a.notifiedAt !== null)).toBe(true)
    // Messages are read by people (the alerts panel, a chat channel): times as `2025-03-20 14:00 UTC`.
    expect(stored.find((a) => a.kind === 'spike')!.message).toContain('in the hour from 2025-03-20 14:00 UTC')
    expect(stored.find((a) => a.kind === 'forecast')!.message).toMatch(
      /cap around 2025-03-\d\d \d\d:\d\d UTC/,
    )
    for (const a of stored) expect(a.message).not.toMatch(/\d{4}-\d\d-\d\dT\d\d/)

    // Delivered exactly once to each receiver, retried through the flaky one, signed.
    for (const path of ['/ok', '/flaky']) {
      const ids = received.filter((r) => r.id.startsWith(`${path} `)).map((r) => r.id)
      expect(ids.sort()).toEqual(stored.map((a) => `${path} ${a.alertId}`).sort())
    }
    expect(flakyFailures).toBe(2 * stored.length)
    for (const r of received) {
      expect(verifySignature(SECRET, r.body, r.signature)).toBe(true)
      expect(verifySignature('wrong-secret-000000', r.body, r.signature)).toBe(false)
    }
    const spike = JSON.parse(received.find((r) => r.body.includes('"spike"'))!.body)
    expect(spike).toMatchObject({
      type: 'tokenmeter.alert',
      alert: { kind: 'spike', subjectId: 'key_spike' },
    })
  })
})
