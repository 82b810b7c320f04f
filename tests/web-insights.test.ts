import { readFileSync } from 'node:fs'
import type { Page, Request } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { toClickHouseTime } from '../services/src/core/usage/usage-row.ts'
import type { TestBrowser } from './helpers/browser.ts'
import { DOCUMENTED_EXPORT_HEADER, parseCsv } from './helpers/export-csv.ts'
import { TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { liveRow, type SeededOrg, seedOrg } from './helpers/web-fixtures.ts'
import {
  apiGet,
  eventually,
  kpiValue,
  openBrowserPage,
  sendChat,
  signInWith,
  startDashboard,
} from './helpers/web-stack.ts'

// The dashboard's insight pages in Debian's Chromium: the "other" series, exact
// drill-down totals, the network view for named admins, and detail pages.
// Every number on screen is checked against the API or a SQL count.

let stack: TestStack
let browser: TestBrowser
let page: Page
let org: SeededOrg

async function expectKpis(query: string, ids = ['requests', 'spendUsd', 'inputTokens', 'outputTokens']) {
  const want = await apiGet<Record<string, number>>(stack, `/api/kpis?${query}&tz=UTC`)
  for (const id of ids) await eventually(() => kpiValue(page, id), `KPI ${id}`).toBe(want[id])
  return want
}

const RUNAWAY_MODEL = 'runaway-model'
const RUNAWAY_ROWS = 230
const EXTRA_MODELS = Array.from({ length: 10 }, (_, i) => `extra-model-${String(i + 1).padStart(2, '0')}`)

beforeAll(async () => {
  // The anomaly detector looks every half second here (60 s by default), so a spike shows promptly.
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startDashboard({ ALERT_CHECK_MS: '500', DEMO: 'true' })
  org = await seedOrg(stack.core)
  // More models than the keys chart shows (12), so an "other" series exists, and one
  // runaway day of a single model: more requests than one page of the request log.
  const key = org.keys.find((k) => k.name === 'ken-cli')!
  const base = liveRow(key)
  const extra: UsageRow[] = EXTRA_MODELS.map((model) => ({ ...base, request_id: crypto.randomUUID(), model }))
  const startOfToday = Math.floor(Date.now() / 86_400_000) * 86_400_000
  const runaway: UsageRow[] = Array.from({ length: RUNAWAY_ROWS }, (_, i) => {
    const at = startOfToday + ((Date.now() - startOfToday) * i) / RUNAWAY_ROWS
    return {
      ...base,
      request_id: crypto.randomUUID(),
      model: RUNAWAY_MODEL,
      started_at: toClickHouseTime(at),
      ended_at: toClickHouseTime(at + 500),
      input_tokens: 1000 + i,
      output_tokens: 10 + i,
      cost_usd: (0.000123 * (i + 1)).toFixed(9),
    }
  })
  // A person whose name and email would run as spreadsheet formulas, in a team with non-ASCII letters.
  await stack.core.store.upsertTeam({ teamId: 'team-zurich', name: 'Équipe Zürich' })
  await stack.core.store.upsertUser({
    userId: 'u-evil',
    name: '=HYPERLINK("http://evil.example","click")',
    email: '+evil@example.com',
    teamId: 'team-zurich',
    role: 'member',
  })
  const evil: UsageRow = {
    ...base,
    request_id: crypto.randomUUID(),
    user_id: 'u-evil',
    team_id: 'team-zurich',
  }
  await stack.core.warehouse.insertRows('requests', [...extra, ...runaway, evil])
  ;({ browser, page } = await openBrowserPage())
  await signInWith(page, stack, TEST_ADMIN_TOKEN)
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

type SeriesAnswer = { buckets: string[]; series: { id: string; points: { requests: number }[] }[] }

describe('dashboard insights in a real browser', () => {
  it('total tokens are input + output, and the hint adds up', async () => {
    await page.goto(`${stack.url}/usage?range=30d`)
    const k = await apiGet<Record<string, number>>(stack, '/api/kpis?range=30d&tz=UTC')
    expect(k.totalTokens).toBe(k.inputTokens! + k.outputTokens!)
    await eventually(() => kpiValue(page, 'totalTokens')).toBe(k.totalTokens)
    const hint = await page.locator('[data-kpi="totalTokens"] .hint').textContent()
    expect(hint).toMatch(/ in \+ .* out/)
    expect(hint).toContain('cached')
  })

  it('the "other" series is muted and drills down to the models it sums, never to __other__', async () => {
    const asked: string[] = []
    const onRequest = (r: Request) => {
      if (r.url().includes('/api/requests') || r.url().includes('/api/kpis')) asked.push(r.url())
    }
    page.on('request', onRequest)
    await page.goto(`${stack.url}/keys?range=30d`)
    const series = await apiGet<SeriesAnswer>(
      stack,
      '/api/series?range=30d&tz=UTC&split=model&granularity=1d&splitLimit=12',
    )
    const other = series.series.find((s) => s.id === '__other__')
    expect(other, 'fixture has more models than the chart shows').toBeDefined()
    const bar = page.locator('[data-chart="daily-spend"] .lc-bars-bar[data-series="__other__"]').last()
    await bar.waitFor()
    // The segment is painted in the theme's muted grey, not a palette colour.
    const [fill, muted] = await bar.evaluate((el) => {
      const probe = document.createElement('span')
      probe.style.color = 'var(--text-3)'
      document.body.append(probe)
      const m = getComputedStyle(probe).color
      probe.remove()
      return [getComputedStyle(el).fill, m]
    })
    expect(fill).toBe(muted)
    const day = other!.points.findLastIndex((p) => p.requests > 0)
    const from = series.buckets[day]!
    await page.locator('[data-chart="daily-spend"] [data-values-table] summary').click()
    await page.locator(`button[data-segment="__other__|${from}"]`).click()
    const drawer = page.locator('[data-drawer="requests"]')
    await drawer.waitFor()
    await eventually(() => drawer.locator('tbody tr').count()).toBe(other!.points[day]!.requests)
    const models = await drawer.locator('tbody tr td:nth-child(3)').allTextContents()
    expect(models.every((m) => EXTRA_MODELS.includes(m) || !series.series.some((s) => s.id === m))).toBe(true)
    expect(asked.length).toBeGreaterThan(0)
    expect(asked.some((u) => decodeURIComponent(u).includes('__other__'))).toBe(false)
    page.off('request', onRequest)
    await page.keyboard.press('Escape')
  })

  it('drill-down header totals are the whole selection (SQL), and the log pages through all of it', async () => {
    await page.goto(`${stack.url}/keys?range=30d`)
    const series = await apiGet<SeriesAnswer>(
      stack,
      '/api/series?range=30d&tz=UTC&split=model&granularity=1d&splitLimit=12',
    )
    const runaway = series.series.find((s) => s.id === RUNAWAY_MODEL)!
    const day = runaway.points.findLastIndex((p) => p.requests > 0)
    const from = series.buckets[day]!
    const to = new Date(Date.parse(from) + 86_400_000).toISOString()
    await page.locator('[data-chart="daily-spend"] [data-values-table] summary').click()
    await page.locator(`button[data-segment="${RUNAWAY_MODEL}|${from}"]`).click()
    const drawer = page.locator('[data-drawer="requests"]')
    await drawer.waitFor()

    const [sql] = await stack.core.warehouse.query<{ n: string; cost: string; tokens: string }>(
      `SELECT count() AS n, toString(sum(cost_usd)) AS cost, sum(input_tokens) + sum(output_tokens) AS tokens
       FROM requests WHERE model = {m:String}
       AND started_at >= {from:DateTime64(3, 'UTC')} AND started_at < {to:DateTime64(3, 'UTC')}`,
      { m: RUNAWAY_MODEL, from: toClickHouseTime(Date.parse(from)), to: toClickHouseTime(Date.parse(to)) },
    )
    expect(Number(sql!.n)).toBe(RUNAWAY_ROWS)
    const total = (what: string) => drawer.locator(`[data-total="${what}"]`).getAttribute('data-value')
    await eventually(() => total('requests')).toBe(String(RUNAWAY_ROWS))
    expect(Number(await total('cost'))).toBe(Number(sql!.cost))
    expect(Number(await total('tokens'))).toBe(Number(sql!.tokens))
    // The first page is 100 rows; "Load more" pages on until every request is listed.
    await eventually(() => drawer.locator('tbody tr').count()).toBe(100)
    while ((await drawer.locator('[data-control="load-more"]').count()) > 0) {
      const before = await drawer.locator('tbody tr').count()
      await drawer.locator('[data-control="load-more"]').click()
      await eventually(() => drawer.locator('tbody tr').count()).toBeGreaterThan(before)
    }
    expect(await drawer.locator('tbody tr').count()).toBe(RUNAWAY_ROWS)
    expect(await drawer.locator('[data-count]').getAttribute('data-count')).toBe(String(RUNAWAY_ROWS))
    await page.keyboard.press('Escape')
  })

  it('keys & spend takes any date range by picker, kept in the URL', async () => {
    // A shared link with dates opens on them, the picker showing them.
    const weekAgo = new Date(Date.now() - 7 * 86_400_000).toISOString().slice(0, 10)
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)
    await page.goto(`${stack.url}/keys?from=${weekAgo}&to=${tomorrow}`)
    await page.locator('[data-control="from"]').waitFor()
    expect(
      await page
        .locator('[data-control="keys-range"] button[data-value="custom"]')
        .getAttribute('aria-checked'),
    ).toBe('true')
    expect(await page.inputValue('[data-control="from"]')).toBe(weekAgo)
    const from = new Date(Date.now() - 5 * 86_400_000).toISOString().slice(0, 10)
    await page.fill('[data-control="from"]', from)
    await page.waitForURL((u) => u.searchParams.get('from') === from && !u.searchParams.has('month'))
    const q = new URL(page.url()).searchParams
    const spend = await apiGet<{ keys: { keyId: string; spentUsd: number }[] }>(
      stack,
      `/api/keys/spend?from=${q.get('from')}&to=${q.get('to')}&tz=UTC`,
    )
    const k = spend.keys.find((x) => x.spentUsd > 0)!
    await eventually(() =>
      page.locator(`[data-key="${k.keyId}"] [data-spent]`).getAttribute('data-spent'),
    ).toBe(String(k.spentUsd))
  })

  it('/admin lands on the network view for a named admin; a lead sees no admin view', async () => {
    const margaret = org.keys.find((k) => k.name === 'margaret-admin')!
    await signInWith(page, stack, margaret.plaintext)
    await page.goto(`${stack.url}/admin`)
    await page.waitForURL((u) => u.pathname === '/admin/usage')
    await expectKpis('range=7d')
    await page.locator('[data-chart="tokens"]').waitFor()
    await page.click('[data-control="period"] button[data-value="30d"]')
    await page.waitForURL(/range=30d/)
    await expectKpis('range=30d')

    const ada = org.keys.find((k) => k.name === 'ada-cursor')!
    await signInWith(page, stack, ada.plaintext)
    await page.goto(`${stack.url}/admin/usage`)
    await page.locator('main [data-state="empty"]').waitFor()
    expect(await page.locator('[data-kpi]').count()).toBe(0)

    await page.goto(`${stack.url}/dashboard/usage`)
    await page.waitForURL((u) => u.pathname === '/keys')
    await signInWith(page, stack, TEST_ADMIN_TOKEN)
  })

  it('opens a user from the breakdown: same cards and charts, scoped, with breadcrumbs', async () => {
    await page.goto(`${stack.url}/usage?range=30d&tags=prod`)
    const row = page.locator('[data-table="breakdown"] tr[data-row="u-grace"] a[data-cell="name"]')
    await row.click()
    await page.waitForURL((u) => u.pathname === '/users/u-grace')
    const url = new URL(page.url())
    expect(url.searchParams.get('range')).toBe('30d')
    expect(url.searchParams.get('tags')).toBe('prod')
    const k = await expectKpis('range=30d&tags=prod&users=u-grace')
    expect(k.requests).toBeGreaterThan(0)
    const everyone = await apiGet<{ requests: number }>(stack, '/api/kpis?range=30d&tags=prod&tz=UTC')
    expect(k.requests).toBeLessThan(everyone.requests)
    await expect.poll(() => page.locator('main h1').textContent()).toBe('Grace Hopper')
    expect(await page.locator('nav[aria-label="Breadcrumb"]').textContent()).toContain('Usage by user')
    const models = await apiGet<{ rows: { id: string }[] }>(
      stack,
      '/api/breakdown?range=30d&tags=prod&users=u-grace&tz=UTC&by=model&sort=cost&order=desc&limit=6',
    )
    await eventually(() =>
      page
        .locator('[data-table="top-model"] li')
        .evaluateAll((l) => l.map((x) => x.getAttribute('data-row'))),
    ).toEqual(models.rows.map((r) => r.id))

    // A model from her top list opens the model's page, keeping the window and other filters.
    await page.locator('[data-table="top-model"] li a').first().click()
    await page.waitForURL((u) => u.pathname.startsWith('/models/'))
    const model = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]!)
    await expectKpis(`range=30d&tags=prod&models=${encodeURIComponent(model)}`)
  })

  it('leaderboard rows, key cards and chart legend items open detail pages', async () => {
    await page.goto(`${stack.url}/leaderboard?range=30d&by=team`)
    const first = page.locator('[data-table="leaderboard"] li a').first()
    await first.waitFor()
    await first.click()
    await page.waitForURL((u) => u.pathname.startsWith('/teams/'))
    const team = new URL(page.url()).pathname.split('/')[2]!
    await expectKpis(`range=30d&teams=${team}`)

    const key = org.keys.find((k) => k.name === 'grace-eval')!
    await page.goto(`${stack.url}/keys?range=30d`)
    await page.locator(`[data-key="${key.keyId}"] a`).click()
    await page.waitForURL((u) => u.pathname === `/keys/${key.keyId}`)
    await expectKpis(`range=30d&keys=${key.keyId}`)
    await expect.poll(() => page.locator('main h1').textContent()).toBe('grace-eval')

    await page.goto(`${stack.url}/usage?range=30d&view=project`)
    const legend = page.locator('[data-chart="activity"] [data-legend="checkout"] a')
    await legend.click()
    await page.waitForURL((u) => u.pathname === '/projects/checkout')
    await expectKpis('range=30d&projects=checkout')
  })

  it('exports the 30-day cost table: one row per user, sums as the API, formula-safe, BOM for Excel', async () => {
    await page.goto(`${stack.url}/usage`)
    await page.click('[data-control="export-menu"]')
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('[data-control="export"]'),
    ])
    const raw = readFileSync((await download.path())!, 'utf8')
    expect(raw.charCodeAt(0)).toBe(0xfeff)
    const [header, ...lines] = parseCsv(raw.slice(1))
    expect(header).toEqual(DOCUMENTED_EXPORT_HEADER)
    type Row = {
      id: string
      name: string
      email?: string
      teamName?: string
      requests: number
      inputTokens: number
      outputTokens: number
      cachedTokens: number
      spendUsd: number
    }
    const bd = await apiGet<{ total: number; rows: Row[] }>(
      stack,
      '/api/breakdown?range=30d&tz=UTC&by=user&sort=cost&order=desc&limit=500',
    )
    expect(lines.length).toBe(bd.total)
    const byId = new Map(lines.map((l) => [l[0]!, l]))
    for (const r of bd.rows) {
      const l = byId.get(r.id)!
      expect(l, r.id).toBeDefined()
      expect(l.slice(4, 9).map(Number)).toEqual([
        r.requests,
        r.inputTokens,
        r.outputTokens,
        r.cachedTokens,
        r.inputTokens + r.outputTokens,
      ])
      expect(Number(l[9])).toBe(Math.round(r.spendUsd * 100) / 100)
      expect(l[9]).toMatch(/^\d+\.\d\d$/)
      expect(Number(l[10])).toBe(r.spendUsd)
    }
    const k = await apiGet<{ requests: number }>(stack, '/api/kpis?range=30d&tz=UTC')
    expect(lines.reduce((s, l) => s + Number(l[4]), 0)).toBe(k.requests)
    // Most expensive first, as finance reads it.
    const costs = lines.map((l) => Number(l[10]))
    expect(costs).toEqual([...costs].sort((a, b) => b - a))
    // Formula-looking cells are neutralised; non-ASCII team names arrive intact.
    const evil = byId.get('u-evil')!
    expect(evil[1]).toBe(`'=HYPERLINK("http://evil.example","click")`)
    expect(evil[2]).toBe(`'+evil@example.com`)
    expect(evil[3]).toBe('Équipe Zürich')
    const ada = byId.get('u-ada')!
    expect(ada.slice(1, 4)).toEqual(['Ada Lovelace', 'ada@example.com', 'Platform'])
  })

  it('a spike created by traffic appears on screen with its evidence and actions, and stays acknowledged', async () => {
    // A quiet key suddenly spending: real gateway requests on an expensive model.
    const key = org.keys.find((k) => k.name === 'edsger-agent')!
    await stack.core.store.upsertModel({
      model: 'sim-pricey',
      provider: 'simulated',
      upstreamModel: 'sim-small',
      inputPerM: 100_000,
      outputPerM: 100_000,
      cachedReadPerM: 0,
      cacheWritePerM: 0,
    })
    const hourStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString()
    const spentThisHour = async () =>
      (await apiGet<{ spendUsd: number }>(stack, `/api/kpis?keys=${key.keyId}&from=${hourStart}&tz=UTC`))
        .spendUsd
    for (let i = 0; i < 60 && (await spentThisHour()) < 2; i++) {
      expect(await sendChat(stack, key.plaintext, 'sim-pricey', 'summarise the repo')).toBe(200)
      // The recorder flushes about every 200 ms here: wait for this request's row before deciding on another.
      await eventually(spentThisHour).toBeGreaterThan(0)
    }
    expect(await spentThisHour()).toBeGreaterThanOrEqual(2)

    // The detector finds it; the alerts page shows it (loaded per visit, so reload until it is there).
    const card = page.locator(`[data-alerts="open"] [data-alert-kind="spike"]:has-text("edsger-agent")`)
    await expect
      .poll(
        async () => {
          await page.goto(`${stack.url}/alerts`)
          await page.locator('main h1').waitFor()
          await page.locator('[data-alerts="open"]').waitFor()
          return card.count()
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1)
    expect(await card.textContent()).toContain('Spike on a quiet key')
    await card.locator('[data-evidence] summary').click()
    // The evidence chart: the key's hours before it and the flagged hour, drawn from /api/series.
    await card.locator('[data-evidence] figure[data-series="baseline|finding"]').waitFor()
    const evidence = await apiGet<{ buckets: string[]; series: { points: { spendUsd: number }[] }[] }>(
      stack,
      `/api/series?keys=${key.keyId}&from=${new Date(Date.parse(hourStart) - 2 * 86_400_000).toISOString()}&granularity=1h&tz=UTC`,
    )
    const flagged = evidence.buckets.indexOf(hourStart)
    expect(evidence.series[0]!.points[flagged]!.spendUsd).toBeGreaterThanOrEqual(2)
    expect(await card.locator('[data-action="rotate"]').getAttribute('href')).toBe(
      `/admin/keys?key=${key.keyId}`,
    )

    // Badges: on the key's card and on the dashboard.
    await page.goto(`${stack.url}/keys?range=30d`)
    await page.locator(`[data-key="${key.keyId}"] [data-key-alert="spike"]`).waitFor()
    await page.goto(`${stack.url}/`)
    await page.locator('[data-alerts-badge]').waitFor()

    // "Open that hour's request log": the drawer lists the hour's requests of that key.
    await page.goto(`${stack.url}/alerts`)
    await card.locator('[data-action="log"]').click()
    await page.waitForURL((u) => u.pathname === '/keys' && u.searchParams.get('logFrom') === hourStart)
    const drawer = page.locator('[data-drawer="requests"]')
    await drawer.waitFor()
    const hour = await apiGet<{ requests: number }>(
      stack,
      `/api/kpis?keys=${key.keyId}&from=${hourStart}&to=${new Date(Date.parse(hourStart) + 3_600_000).toISOString()}&tz=UTC`,
    )
    await eventually(() => drawer.locator('[data-total="requests"]').getAttribute('data-value')).toBe(
      String(hour.requests),
    )
    await page.keyboard.press('Escape')

    // "Rotate the key" leads to that key's row on the admin page.
    await page.goto(`${stack.url}/admin/keys?key=${key.keyId}`)
    await page.locator(`tr[data-row="${key.keyId}"][data-highlight]`).waitFor()

    // Acknowledge: it leaves the open list, for good (after a reload, and in the API).
    await page.goto(`${stack.url}/alerts`)
    const id = await card.getAttribute('data-alert')
    await card.locator('[data-action="ack"]').click()
    await page.locator(`[data-alerts="acknowledged"] [data-alert="${id}"] [data-acknowledged]`).waitFor()
    await page.reload()
    await page.locator(`[data-alerts="acknowledged"] [data-alert="${id}"]`).waitFor()
    expect(await page.locator(`[data-alerts="open"] [data-alert="${id}"]`).count()).toBe(0)
    const open = await apiGet<{ alerts: { alertId: string }[] }>(stack, '/api/alerts?state=open')
    expect(open.alerts.map((a) => a.alertId)).not.toContain(id)
    await page.goto(`${stack.url}/keys?range=30d`)
    await page.locator(`[data-key="${key.keyId}"]`).waitFor()
    expect(await page.locator(`[data-key="${key.keyId}"] [data-key-alert="spike"]`).count()).toBe(0)
  }, 180_000)

  it('live mode is pushed: with no traffic the page re-requests nothing; a request refreshes it once', async () => {
    const asked: string[] = []
    const onRequest = (r: Request) => {
      const path = new URL(r.url()).pathname
      if (path === '/api/series' || path === '/api/breakdown') asked.push(path)
    }
    const liveRefreshes = async () => {
      const text = (
        await stack.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })
      ).body
      return Number(/^tokenmeter_live_refreshes_started_total (\d+)/m.exec(text)?.[1] ?? Number.NaN)
    }
    page.on('request', onRequest)
    await page.goto(`${stack.url}/usage?range=24h&view=team&live=1`)
    await page.locator('[data-live-status="live"]').waitFor({ timeout: 15_000 })
    await eventually(() => asked.length).toBeGreaterThanOrEqual(2)
    const settled = asked.length
    // The hub re-reads ClickHouse for this filter every few seconds (idle refresh): let it do so twice.
    const start = await liveRefreshes()
    expect(start).toBeGreaterThan(0)
    await expect.poll(liveRefreshes, { timeout: 30_000, interval: 250 }).toBeGreaterThanOrEqual(start + 2)
    expect(asked.slice(settled)).toEqual([])

    // One gateway request: the pushed numbers move, and the chart and table follow once.
    const key = org.keys.find((k) => k.name === 'ken-cli')!
    const before = await kpiValue(page, 'requests')
    expect(await sendChat(stack, key.plaintext, 'sim-chat')).toBe(200)
    await eventually(() => kpiValue(page, 'requests')).toBe(before + 1)
    await eventually(() => asked.slice(settled).sort()).toEqual(['/api/breakdown', '/api/series'])
    page.off('request', onRequest)
    await page.click('[data-control="live"]')
  })
})
