import { readFileSync } from 'node:fs'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestBrowser } from './helpers/browser.ts'
import { saveScreenshot } from './helpers/screenshots.ts'
import { TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { type SeededOrg, seedOrg } from './helpers/web-fixtures.ts'
import {
  apiGet,
  eventually,
  kpiValue,
  openBrowserPage,
  sendChat,
  startDashboard,
} from './helpers/web-stack.ts'

// The built dashboard, served by the product itself, in Debian's Chromium.
// Every number the page shows is checked against the API's answer for the
// same filters, fetched by the test with the admin token.

const FILTERS = ['range', 'from', 'to', 'month', 'keys', 'tags', 'teams', 'users', 'models', 'providers']

let stack: TestStack
let browser: TestBrowser
let page: Page
let org: SeededOrg

/** The API query for what the page's URL currently says (the browser runs in UTC). */
function filtersOfPage(extra: Record<string, string> = {}): string {
  const url = new URL(page.url())
  const p = new URLSearchParams()
  for (const name of FILTERS) {
    const v = url.searchParams.get(name)
    if (v && !(name === 'range' && v === 'custom')) p.set(name, v)
  }
  p.set('tz', 'UTC')
  for (const [k, v] of Object.entries(extra)) p.set(k, v)
  return String(p)
}

/** Waits until the KPI cards show exactly what /api/kpis answers for the page's filters. */
async function expectKpisMatchApi(
  ids: string[] = ['requests', 'spendUsd', 'totalTokens', 'activeUsers'],
): Promise<Record<string, number>> {
  const want = await apiGet<Record<string, number>>(stack, `/api/kpis?${filtersOfPage()}`)
  for (const id of ids) expect(typeof want[id], `API KPI ${id}`).toBe('number')
  for (const id of ids) {
    await eventually(() => kpiValue(page, id), `KPI ${id}`).toBe(want[id])
  }
  return want
}

async function rowIds(): Promise<string[]> {
  return page
    .locator('[data-table="breakdown"] tbody tr')
    .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-row') ?? ''))
}

/**
 * Pictures of states the page-by-page set of tests/web-a11y.test.ts does not show (signing in,
 * filters, live mode, a drill-down, a new key), written only with UPDATE_SCREENSHOTS=1.
 */
const shot = (name: string, opts?: { fullPage?: boolean }) => saveScreenshot(page, name, opts)

beforeAll(async () => {
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startDashboard({ DEMO: 'true' })
  org = await seedOrg(stack.core)
  ;({ browser, page } = await openBrowserPage())
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

describe('dashboard in a real browser', () => {
  it('serves the app with an SPA fallback, and keeps /api 404s as JSON', async () => {
    const deep = await fetch(`${stack.url}/usage?view=team`)
    expect(deep.status).toBe(200)
    expect(deep.headers.get('content-type')).toContain('text/html')
    const missing = await fetch(`${stack.url}/api/no-such-thing`)
    expect(missing.status).toBe(404)
    expect((await missing.json()).error.code).toBe('not_found')
  })

  it('signs in with a pasted token and shows the personal dashboard', async () => {
    await page.goto(`${stack.url}/`)
    await page.waitForURL(/\/signin/)
    await shot('signin')
    await page.fill('#token', 'not-a-real-token')
    await page.click('button[type=submit]')
    await eventually(() => page.locator('#token-error').textContent()).toContain('not accepted')
    await page.fill('#token', TEST_ADMIN_TOKEN)
    await page.click('button[type=submit]')
    await page.waitForURL((u) => u.pathname === '/')
    const week = await expectKpisMatchApi(['requests', 'spendUsd', 'inputTokens', 'outputTokens'])
    expect(week.requests).toBeGreaterThan(0)

    await page.click('[data-control="period"] button[data-value="30d"]')
    await page.waitForURL(/range=30d/)
    const month = await expectKpisMatchApi(['requests', 'spendUsd', 'inputTokens', 'outputTokens'])
    expect(month.requests).toBeGreaterThan(week.requests!)
    await eventually(() =>
      page.locator('[data-chart="activity"] .lc-bars-bar').count(),
    ).toBeGreaterThanOrEqual(30)
  })

  it('usage: each filter changes the numbers to what the API answers', async () => {
    await page.goto(`${stack.url}/usage`)
    let last = await expectKpisMatchApi()

    const changes: [string, () => Promise<void>][] = [
      ['range 14d', () => page.click('[data-control="range"] button[data-value="14d"]')],
      [
        'custom range',
        async () => {
          await page.click('[data-control="range"] button[data-value="custom"]')
          await page.locator('[data-control="from"]').waitFor()
          const to = new Date().toISOString().slice(0, 10)
          const from = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10)
          await page.fill('[data-control="from"]', from)
          await page.waitForURL(new RegExp(`from=${from}`))
          await page.fill('[data-control="to"]', to)
        },
      ],
      ['range 30d', () => page.click('[data-control="range"] button[data-value="30d"]')],
      ['api key', () => pick('keys', org.keys[3]!.keyId)],
      ['second api key', () => pick('keys', org.keys[0]!.keyId)],
      ['tag', () => pick('tags', 'prod')],
      ['team', () => pick('teams', 'team-research')],
    ]
    for (const [what, change] of changes) {
      const before = page.url()
      await change()
      await page.waitForURL((u) => u.toString() !== before)
      const now = await expectKpisMatchApi()
      expect(now, `${what} changed nothing`).not.toEqual(last)
      last = now
    }
    await shot('usage-filtered')
  })

  it('usage: the table sorts by any column and searches on the server', async () => {
    await page.goto(`${stack.url}/usage?range=30d`)
    const base = filtersOfPage({ by: 'user', limit: '50', offset: '0' })
    type Rows = { rows: { id: string }[] }
    await eventually(rowIds).toEqual(
      (await apiGet<Rows>(stack, `/api/breakdown?${base}&sort=cost&order=desc`)).rows.map((r) => r.id),
    )

    for (const [col, order] of [
      ['requests', 'desc'],
      ['requests', 'asc'],
      ['name', 'asc'],
      ['output', 'desc'],
    ] as const) {
      // A first click sorts a column (desc; names asc), a second click flips it.
      await page.click(`[data-sort="${col}"]`)
      await page.waitForURL(
        (u) => u.searchParams.get('sort') === col && u.searchParams.get('order') === order,
      )
      const want = await apiGet<Rows>(stack, `/api/breakdown?${base}&sort=${col}&order=${order}`)
      await eventually(rowIds, `sort ${col} ${order}`).toEqual(want.rows.map((r) => r.id))
    }

    await page.fill('[data-control="search"]', 'grace')
    await page.waitForURL(/q=grace/)
    const found = await apiGet<Rows>(stack, `/api/breakdown?${base}&sort=output&order=desc&search=grace`)
    expect(found.rows.map((r) => r.id)).toEqual(['u-grace'])
    await eventually(rowIds).toEqual(['u-grace'])
    await page.fill('[data-control="search"]', 'nobody-matches-this')
    await eventually(() => page.locator('[data-state="empty"]').count()).toBe(1)
  })

  it('usage: export downloads the CSV for the current filters', async () => {
    await page.goto(`${stack.url}/usage?range=14d&teams=team-platform`)
    await expectKpisMatchApi(['requests'])
    await page.click('[data-control="export-menu"]')
    await page.check('[data-export-range="page"]')
    await page.check('[data-export-per-day]')
    await page.uncheck('[data-export-bom]')
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('[data-control="export"]'),
    ])
    const csv = readFileSync((await download.path())!, 'utf8')
    const res = await fetch(`${stack.url}/api/export.csv?${filtersOfPage({ by: 'user', rows: 'day' })}`, {
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    })
    expect(csv.split(/\r?\n/)[0]).toBe(
      'day,group_id,name,email,team,requests,input_tokens,output_tokens,cached_tokens,total_tokens,cost_usd,cost_usd_exact,cache_write_tokens,reasoning_tokens,unpriced_requests',
    )
    expect(csv).toBe(await res.text())
    expect(csv).toContain('u-ada')
    expect(csv).not.toContain('u-grace')
  })

  it('usage: the by-team view stacks the activity by team', async () => {
    await page.goto(`${stack.url}/usage?range=7d`)
    await page.click('[data-control="view"] button[data-value="team"]')
    await page.waitForURL(/view=team/)
    const series = await apiGet<{ series: { id: string }[] }>(
      stack,
      `/api/series?${filtersOfPage({ split: 'team' })}`,
    )
    expect(series.series.length).toBe(3)
    const figure = page.locator('[data-chart="activity"] figure')
    await eventually(() => figure.getAttribute('data-series')).toBe(series.series.map((s) => s.id).join('|'))
    await eventually(() => page.locator('[data-chart="activity"] .lc-bars').count()).toBe(3)
    const teams = await apiGet<{ rows: { id: string }[] }>(
      stack,
      `/api/breakdown?${filtersOfPage({ by: 'team', sort: 'cost', order: 'desc' })}`,
    )
    await eventually(rowIds).toEqual(teams.rows.map((r) => r.id))
    await page.goto(`${stack.url}/usage?range=7d`)
    await expectKpisMatchApi(['requests'])
    await shot('usage-by-user')
  })

  it('live mode shows a new gateway request within two seconds', async () => {
    await page.goto(`${stack.url}/usage?range=24h`)
    const before = (await expectKpisMatchApi(['requests'])).requests!
    await page.click('[data-control="live"]')
    await page.waitForURL(/live=1/)
    await page.locator('[data-live-status="live"]').waitFor({ timeout: 10_000 })
    const key = org.keys.find((k) => k.name === 'ken-cli')!
    expect(await sendChat(stack, key.plaintext, 'sim-chat')).toBe(200)
    await expect.poll(() => kpiValue(page, 'requests'), { timeout: 2_000, interval: 100 }).toBe(before + 1)
    await shot('usage-live')
    await page.click('[data-control="live"]')
    await page.locator('[data-live-status="off"]').waitFor()
  })

  it('keys: cards per key, and a bar segment drills down to that day and model', async () => {
    await page.goto(`${stack.url}/keys?range=30d`)
    const spend = await apiGet<{ keys: { keyId: string; spentUsd: number }[] }>(
      stack,
      `/api/keys/spend?${filtersOfPage()}`,
    )
    await eventually(() => page.locator('[data-key]').count()).toBe(spend.keys.length)
    for (const k of spend.keys.slice(0, 3)) {
      expect(
        Number(await page.locator(`[data-key="${k.keyId}"] [data-spent]`).getAttribute('data-spent')),
      ).toBe(k.spentUsd)
    }
    const series = await apiGet<{
      buckets: string[]
      series: { id: string; points: { requests: number }[] }[]
    }>(stack, `/api/series?${filtersOfPage({ split: 'model', granularity: '1d', splitLimit: '12' })}`)
    await eventually(() => page.locator('[data-chart="daily-spend"] .lc-bars').count()).toBe(
      series.series.length,
    )
    // The newest day with traffic for the first model: click its segment.
    const model = series.series[0]!
    const day = model.points
      .map((p, i) => (p.requests > 0 ? i : -1))
      .filter((i) => i >= 0)
      .at(-1)!
    await page.locator(`[data-chart="daily-spend"] .lc-bars-bar[data-series="${model.id}"]`).nth(day).click()
    const drawer = page.locator('[data-drawer="requests"]')
    await drawer.waitFor()
    const from = series.buckets[day]!
    const to = series.buckets[day + 1] ?? new Date(Date.parse(from) + 86_400_000).toISOString()
    const log = await apiGet<{ rows: { requestId: string; model: string }[] }>(
      stack,
      `/api/requests?${new URLSearchParams({ from, to, tz: 'UTC', models: model.id, limit: '100' })}`,
    )
    expect(log.rows.length).toBe(model.points[day]!.requests)
    await eventually(() => drawer.locator('tbody tr').count()).toBe(log.rows.length)
    const ids = await drawer
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-request')))
    expect(ids).toEqual(log.rows.map((r) => r.requestId))
    await shot('keys-drilldown', { fullPage: false })
    await page.keyboard.press('Escape')
    await drawer.waitFor({ state: 'detached' })

    // Keyboard path: the same drill-down from the chart's values table, then focus comes back.
    const chart = page.locator('[data-chart="daily-spend"]')
    await chart.locator('[data-values-table] summary').focus()
    await page.keyboard.press('Enter')
    const cell = chart.locator(`button[data-segment="${model.id}|${from}"]`)
    await cell.waitFor()
    expect(await cell.getAttribute('aria-label')).toMatch(/ — open request log$/)
    await cell.focus()
    await page.keyboard.press('Enter')
    await drawer.waitFor()
    await eventually(() => drawer.locator('tbody tr').count()).toBe(log.rows.length)
    expect(
      await drawer.locator('tbody tr').evaluateAll((trs) => trs.map((t) => t.getAttribute('data-request'))),
    ).toEqual(log.rows.map((r) => r.requestId))
    await page.keyboard.press('Escape')
    await drawer.waitFor({ state: 'detached' })
    await eventually(() => cell.evaluate((el) => el === document.activeElement)).toBe(true)
  })

  it('leaderboard, admin and ops pages render from the API', async () => {
    await page.goto(`${stack.url}/leaderboard?range=30d`)
    const board = await apiGet<{ rows: { id: string }[] }>(
      stack,
      `/api/leaderboard?${filtersOfPage({ by: 'user', metric: 'tokens', limit: '20' })}`,
    )
    await eventually(() =>
      page
        .locator('[data-table="leaderboard"] li')
        .evaluateAll((l) => l.map((x) => x.getAttribute('data-row'))),
    ).toEqual(board.rows.map((r) => r.id))

    for (const [path, list] of [
      ['/admin/teams', 'teams'],
      ['/admin/users', 'users'],
      ['/admin/models', 'models'],
      ['/admin/budgets', 'budgets'],
      ['/ops', undefined],
    ] as const) {
      await page.goto(`${stack.url}${path}`)
      await page.locator('main h1').waitFor()
      await eventually(() => page.locator('main .skeleton').count(), path).toBe(0)
      if (list) {
        // Every item of the admin API's list is a row, counted in the card's header; none: the empty state.
        const items = (await apiGet<Record<string, unknown[]>>(stack, `/api${path}`))[list]!
        const card = page.locator('main .admin-list')
        if (items.length === 0)
          await eventually(() => card.locator('[data-state=empty]').count(), path).toBe(1)
        else {
          await eventually(() => card.locator('[data-row]').count(), path).toBe(items.length)
          expect(await card.locator('header h2').textContent()).toBe(`${items.length} ${list}`)
        }
      }
    }

    // Keys: create one; the plaintext is shown once and then works as a credential.
    await page.goto(`${stack.url}/admin/keys`)
    await page.locator('form select').selectOption('u-ken')
    await page.fill('form input.input', 'ken-browser-test')
    await page.click('form button[type=submit]')
    const plaintext = (await page.locator('[data-plaintext]').textContent())!.trim()
    expect(plaintext).toMatch(/^tm_/)
    const me = await fetch(`${stack.url}/api/me`, { headers: { authorization: `Bearer ${plaintext}` } })
    expect((await me.json()).userId).toBe('u-ken')
    await shot('admin-keys-created')
  })

  it('works at phone width and in the dark theme', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    await page.goto(`${stack.url}/usage?range=7d`)
    await expectKpisMatchApi(['requests'])
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    expect(overflow).toBeLessThanOrEqual(0)
    await page.setViewportSize({ width: 1440, height: 900 })
    await page.goto(`${stack.url}/`)
    await page.click('[data-theme-choice="dark"]')
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark')
    await expectKpisMatchApi(['requests'])
    await shot('dashboard-dark')
    // 'system' follows the OS setting, including a change while the page is open.
    await page.click('[data-theme-choice="system"]')
    const themeNow = () => page.evaluate(() => document.documentElement.dataset.theme)
    await page.emulateMedia({ colorScheme: 'dark' })
    await expect.poll(themeNow).toBe('dark')
    await page.emulateMedia({ colorScheme: 'light' })
    await expect.poll(themeNow).toBe('light')
    await page.reload()
    expect(await themeNow()).toBe('light')
  })
})

async function pick(filter: string, value: string) {
  const root = page.locator(`[data-filter="${filter}"]`)
  await root.locator('button.trigger').click()
  await root.locator(`input[type=checkbox][data-value="${value}"]`).check()
  await page.keyboard.press('Escape')
}
