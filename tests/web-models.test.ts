import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { toClickHouseTime } from '../services/src/core/usage/usage-row.ts'
import type { TestBrowser } from './helpers/browser.ts'
import { TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { eventually, openBrowserPage, startDashboard } from './helpers/web-stack.ts'

// Reasoning tokens and unpriced requests on the built dashboard, in Debian's
// Chromium: the overview's KPI hints, the usage table's unpriced badge, and
// the request log's reasoning column and "unpriced" in place of a $0 cost.

let stack: TestStack
let browser: TestBrowser
let page: Page
const REASONING = [40, 25]

function row(key: { keyId: string; keyPrefix: string }, model: string, over: Partial<UsageRow>): UsageRow {
  const now = Date.now()
  return {
    request_id: crypto.randomUUID(),
    started_at: toClickHouseTime(now - 1000),
    ended_at: toClickHouseTime(now - 500),
    key_id: key.keyId,
    key_prefix: key.keyPrefix,
    user_id: 'u-ria',
    team_id: 't-lab',
    project: '',
    client_app: '',
    tags: [],
    provider: 'openai',
    model,
    upstream_model: model,
    endpoint: '/v1/chat/completions',
    streamed: false,
    status_code: 200,
    error_class: '',
    input_tokens: 100,
    output_tokens: 90,
    cached_read_tokens: 0,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: '0.000000000',
    latency_ms: 500,
    ttft_ms: 0,
    batch_id: '',
    ...over,
  }
}

beforeAll(async () => {
  stack = await startDashboard()
  const store = stack.core.store
  await store.upsertTeam({ teamId: 't-lab', name: 'Lab' })
  await store.upsertUser({
    userId: 'u-ria',
    email: 'ria@example.com',
    name: 'Ria',
    teamId: 't-lab',
    role: 'member',
  })
  const { key } = await store.createKey({ userId: 'u-ria', name: 'ria-laptop' })
  for (const r of REASONING) {
    stack.core.recorder.record(row(key, 'o3', { reasoning_tokens: r, cost_usd: '0.001000000' }))
  }
  for (let i = 0; i < 2; i++) stack.core.recorder.record(row(key, 'gpt-imaginary-9', { price_unknown: true }))
  // Priced once an admin gave it a facade; its day then has spend to click on.
  stack.core.recorder.record(row(key, 'gpt-imaginary-9', { cost_usd: '0.002000000' }))
  await stack.core.recorder.flush()
  ;({ browser, page } = await openBrowserPage())
  await page.goto(`${stack.url}/signin`)
  await page.fill('#token', TEST_ADMIN_TOKEN)
  await page.click('button[type=submit]')
  await page.waitForURL((u) => u.pathname === '/')
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

describe('reasoning tokens and unpriced requests on the dashboard', () => {
  it('overview: output tokens name their reasoning part; spend says how many requests had no price', async () => {
    const reasoning = REASONING.reduce((a, b) => a + b, 0)
    await eventually(() => page.locator('[data-kpi="outputTokens"] .hint').textContent()).toBe(
      `${reasoning} reasoning`,
    )
    await eventually(() => page.locator('[data-kpi="spendUsd"] .hint').textContent()).toContain(
      '2 requests unpriced',
    )
  })

  it('usage table: the unpriced badge on the row that has them', async () => {
    await page.goto(`${stack.url}/usage?range=24h`)
    await eventually(() =>
      page.locator('[data-row="u-ria"] [data-cell="cost"] [data-unpriced]').getAttribute('data-unpriced'),
    ).toBe('2')
  })

  it('request log: reasoning per request, and "unpriced" instead of a $0 cost', async () => {
    await page.goto(`${stack.url}/keys`)
    const chart = page.locator('[data-chart="daily-spend"]')
    await chart.locator('[data-values-table] summary').click()
    for (const [model, check] of [
      ['o3', 'reasoning'],
      ['gpt-imaginary-9', 'unpriced'],
    ] as const) {
      await chart.locator(`button[data-segment^="${model}|"]`).last().click()
      const drawer = page.locator('[data-drawer="requests"]')
      await drawer.waitFor()
      await eventually(() => drawer.locator('tbody tr').count()).toBe(check === 'reasoning' ? 2 : 3)
      if (check === 'reasoning') {
        const cells = await drawer.locator('[data-cell="reasoning"]').allTextContents()
        expect(cells.map(Number).sort()).toEqual([...REASONING].sort())
      } else {
        const costs = await drawer.locator('[data-cell="cost"]').allTextContents()
        expect(costs.filter((c) => c.trim() === 'unpriced')).toHaveLength(2)
        expect(costs.filter((c) => c.trim().startsWith('$0.00'))).toHaveLength(1)
      }
      await page.keyboard.press('Escape')
      await drawer.waitFor({ state: 'detached' })
    }
  })
})
