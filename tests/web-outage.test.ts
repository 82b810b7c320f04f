import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WEB_BUILD_DIR } from '../services/src/web.routes.ts'
import { launchBrowser, type TestBrowser } from './helpers/browser.ts'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { liveRow, type SeededOrg, seedOrg } from './helpers/web-fixtures.ts'

// A ClickHouse outage as the dashboard shows it: server mode over real HTTP
// (tests/helpers/clickhouse-http.ts), the endpoint stopped and started again.

const ROOT = join(import.meta.dirname, '..')
let ch: ClickHouseHttp
let stack: TestStack
let browser: TestBrowser
let page: Page
let org: SeededOrg

function eventually<T>(fn: () => T | Promise<T>, message?: string) {
  return expect.poll(fn, { timeout: 20_000, interval: 200, message })
}

async function apiRes(path: string) {
  return fetch(`${stack.url}${path}`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })
}

beforeAll(async () => {
  if (!existsSync(join(WEB_BUILD_DIR, 'index.html'))) {
    execFileSync('npm', ['run', 'build:web'], { cwd: ROOT, stdio: 'ignore' })
  }
  ch = await startClickHouseHttp()
  stack = await startTestStack({
    listen: true,
    roles: ['gateway', 'api', 'web'],
    env: { CLICKHOUSE_URL: ch.url, CLICKHOUSE_INSERT_TIMEOUT_MS: '1000', RECORDER_FLUSH_MS: '100' },
  })
  // Server mode's admin store can be mid-reload from ClickHouse when the fixture adds a user to a
  // team it just created ("unknown team"); the fixture's upserts are idempotent, so try again once.
  org = await seedOrg(stack.core, { days: 3 }).catch(() => seedOrg(stack.core, { days: 3 }))
  browser = await launchBrowser()
  page = browser.context.pages()[0] ?? (await browser.context.newPage())
  const res = await browser.context.request.post(`${stack.url}/api/session`, {
    data: { token: TEST_ADMIN_TOKEN },
  })
  expect(res.status()).toBe(200)
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
  await ch?.close()
})

describe('a ClickHouse outage on the dashboard', () => {
  it('says storage is unreachable with the buffered count, then recovers by itself after the replay', async () => {
    await page.goto(`${stack.url}/`)
    await page.locator('[data-kpi="requests"] .value[data-value]').waitFor()

    await ch.stop()
    // Traffic during the outage: recorded, parked in the journal, nothing lost. A second batch once
    // the journal's drainer retries the first: it compresses that one while it waits (the ops page says so).
    const key = org.keys[0]!
    for (let i = 0; i < 7; i++) stack.core.recorder.record(liveRow(key))
    await stack.core.recorder.flush()
    await eventually(() => stack.core.journal!.recovery.progress().state).toBe('waiting')
    for (let i = 0; i < 7; i++) stack.core.recorder.record(liveRow(key))
    await stack.core.recorder.flush()

    const res = await apiRes('/api/kpis?range=7d')
    expect(res.status).toBe(503)
    const body = (await res.json()) as { error: { code: string; details: { buffered: number } } }
    expect(body.error.code).toBe('storage_unavailable')
    expect(body.error.details.buffered).toBeGreaterThanOrEqual(7)

    await page.reload()
    const msg = page.locator('[data-error="storage_unavailable"]').first()
    await msg.waitFor()
    expect(await msg.textContent()).toMatch(
      /Usage storage is unreachable: \d+ requests buffered, nothing lost; charts resume when it returns\./,
    )
    expect(await page.locator('text=Internal error').count()).toBe(0)

    await page.goto(`${stack.url}/ops`)
    await page.locator('[data-ops] .big.bad').first().waitFor()
    await eventually(() => page.locator('[data-journal-compaction]').textContent()).toMatch(
      /^1 waiting compressed · compression saved [\d.]+ (B|KB) \(\d+\.\d×\)$/,
    )

    // Back: the replay drains the spool; the ops page drops its error and says so plainly.
    await ch.start()
    await eventually(async () => {
      await stack.core.outage.replayNow()
      return (await stack.core.outage.listBatches(10)).length
    }).toBe(0)
    await page.locator('[data-ops-banner="ok"]').waitFor({ timeout: 20_000 })
    expect(await page.locator('[data-ops-banner="error"]').count()).toBe(0)
    expect(await page.locator('main').textContent()).not.toMatch(/redisOverBudget|spoolFull|backing-off/)

    // The dashboard opened during the outage comes back without a reload.
    await ch.stop()
    await page.goto(`${stack.url}/`)
    await page.locator('[data-error="storage_unavailable"]').first().waitFor()
    await ch.start()
    const want = (await (await apiRes('/api/kpis?range=7d&tz=UTC')).json()) as { requests: number }
    await eventually(() => page.locator('[data-kpi="requests"] .value').getAttribute('data-value')).toBe(
      String(want.requests),
    )
    // Every card and chart retries on its own (every 5 s) until none shows the outage.
    await eventually(() => page.locator('[data-error="storage_unavailable"]').count()).toBe(0)
  }, 180_000)

  it("live counters keep moving from the gateway's own rows while storage is down, each counted once after", async () => {
    const requestsCard = page.locator('[data-kpi="requests"] .value[data-value]')
    await page.goto(`${stack.url}/?live=1&range=7d`)
    await page.locator('[data-live-status="live"]').waitFor({ timeout: 20_000 })
    const before = Number(await requestsCard.getAttribute('data-value'))

    await ch.stop()
    try {
      // The gateway's own rows: recorded (the path every proxied request takes), journaled, parked in the journal.
      const key = org.keys[1] ?? org.keys[0]!
      for (let i = 0; i < 5; i++) stack.core.recorder.record(liveRow(key))
      await eventually(
        () => requestsCard.getAttribute('data-value'),
        'the live card moves during the outage',
      ).toBe(String(before + 5))
      expect(await page.locator('[data-live-status]').getAttribute('data-live-status')).toBe('live')
    } finally {
      await ch.start()
    }

    // After the replay ClickHouse holds the rows: the card and the API agree, each row counted once.
    await eventually(async () => {
      await stack.core.outage.replayNow()
      return (await stack.core.outage.listBatches(10)).length
    }).toBe(0)
    await eventually(
      async () =>
        ((await (await apiRes('/api/kpis?range=7d&tz=UTC')).json()) as { requests: number }).requests,
    ).toBe(before + 5)
    await eventually(() => requestsCard.getAttribute('data-value')).toBe(String(before + 5))
  }, 180_000)
})
