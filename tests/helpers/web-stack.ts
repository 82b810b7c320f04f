import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { expect } from 'vitest'
import { WEB_BUILD_DIR } from '../../services/src/web.routes.ts'
import { launchBrowser, type TestBrowser } from './browser.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './test-core.ts'

// What the dashboard's browser tests start with: the product serving the built
// dashboard, and Debian's Chromium on one page. Each test file seeds its own data.

/**
 * The gateway, API and web roles on a loopback port, serving web/build (built
 * once if this checkout has not: `npm test` builds it in pretest).
 */
export async function startDashboard(env: Record<string, string> = {}): Promise<TestStack> {
  if (!existsSync(join(WEB_BUILD_DIR, 'index.html'))) {
    execFileSync('npm', ['run', 'build:web'], { cwd: join(import.meta.dirname, '../..'), stdio: 'ignore' })
  }
  return startTestStack({ listen: true, roles: ['gateway', 'api', 'web'], env })
}

/** Chromium (tests/helpers/browser.ts) and the page it opened with. */
export async function openBrowserPage(): Promise<{ browser: TestBrowser; page: Page }> {
  const browser = await launchBrowser()
  const page = browser.context.pages()[0] ?? (await browser.context.newPage())
  return { browser, page }
}

/** Pages load over a busy two-core machine: wait for the right answer, never for a duration. */
export function eventually<T>(fn: () => T | Promise<T>, message?: string) {
  return expect.poll(fn, { timeout: 15_000, interval: 100, message })
}

/** A GET of the API with a bearer token (the admin's by default) that must answer 200. */
export async function apiGet<T>(stack: TestStack, path: string, token = TEST_ADMIN_TOKEN): Promise<T> {
  const res = await fetch(`${stack.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
  expect(res.status, `${path}: ${res.status}`).toBe(200)
  return (await res.json()) as T
}

/** Signs the page's browser in with a token (an API key or the admin token), dropping any earlier session. */
export async function signInWith(page: Page, stack: TestStack, token: string) {
  await page.context().clearCookies()
  const res = await page.context().request.post(`${stack.url}/api/session`, { data: { token } })
  expect(res.status()).toBe(200)
}

/** The exact value a KPI card shows (its data-value), NaN while it has none. */
export async function kpiValue(page: Page, id: string): Promise<number> {
  const v = await page.locator(`[data-kpi="${id}"] .value`).getAttribute('data-value')
  return v === null || v === '' ? Number.NaN : Number(v)
}

/** One chat completion through the product's gateway with an API key; its status (the body read to the end). */
export async function sendChat(stack: TestStack, plaintext: string, model: string, content = 'hello') {
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${plaintext}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
  })
  await res.text()
  return res.status
}
