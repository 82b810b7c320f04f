import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestBrowser } from './helpers/browser.ts'
import { TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { eventually, openBrowserPage, startDashboard } from './helpers/web-stack.ts'

// The dashboard under its security headers (CSP with hashed inline scripts)
// in Debian's Chromium: it still runs, and its sessions page and sign-out end
// sessions on the server.
let stack: TestStack
let browser: TestBrowser
let page: Page
let memberKey: string
const violations: string[] = []

const me = (cookie: string) => fetch(`${stack.url}/api/me`, { headers: { cookie } })

beforeAll(async () => {
  stack = await startDashboard()
  const s = stack.core.store
  await s.upsertTeam({ teamId: 'team_a', name: 'Team A' })
  await s.upsertUser({ userId: 'u_m', email: 'm@x.io', name: 'Mia Member', teamId: 'team_a', role: 'member' })
  memberKey = (await s.createKey({ userId: 'u_m', name: 'laptop' })).plaintext
  ;({ browser, page } = await openBrowserPage())
  // Anything the CSP blocks is reported by the browser as a securitypolicyviolation event.
  await page.exposeFunction('reportViolation', (v: string) => violations.push(v))
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      ;(window as unknown as { reportViolation(v: string): void }).reportViolation(
        `${e.violatedDirective} ${e.blockedURI}`,
      )
    })
  })
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) violations.push(m.text())
  })
  page.on('dialog', (d) => void d.accept())
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

describe('dashboard sessions in a real browser', () => {
  it('runs under its CSP, lists sessions, ends one, and sign-out ends its own on the server', async () => {
    const res = await fetch(`${stack.url}/`)
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-/)

    await page.goto(`${stack.url}/`)
    await page.waitForURL(/\/signin/)
    await page.fill('#token', TEST_ADMIN_TOKEN)
    await page.click('button[type=submit]')
    await page.waitForURL((u) => u.pathname === '/')
    // The app booted (its inline bootstrap script was allowed by hash) and drew the dashboard.
    await page.locator('[data-kpi="requests"]').waitFor()

    // A member signs in elsewhere.
    const member = await fetch(`${stack.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: memberKey }),
    })
    const memberCookie = String(member.headers.get('set-cookie')).split(';')[0]!
    expect((await me(memberCookie)).status).toBe(200)

    await page.click('a[href="/admin/sessions"]')
    await page.locator('main h1', { hasText: 'Sessions' }).waitFor()
    const list = await (
      await fetch(`${stack.url}/api/admin/sessions`, {
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      })
    ).json()
    const card = page.locator('main .admin-list')
    await eventually(() => card.locator('[data-row]').count()).toBe(list.sessions.length)
    const memberId = memberCookie.split('=')[1]!.split('.')[0]!
    const row = card.locator(`[data-row="${memberId}"]`)
    expect(await row.textContent()).toContain('Mia Member')
    await row.locator('button', { hasText: 'End' }).click()
    await eventually(() => row.locator('.badge').last().textContent()).toBe('ended')
    expect(await row.textContent()).toContain('ended by an admin')
    expect((await me(memberCookie)).status).toBe(401)

    // Sign out: the browser's cookie, replayed afterwards, is dead on the server.
    const [own] = (await browser.context.cookies(stack.url)).filter((c) => c.name === 'tm_session')
    expect(own).toBeDefined()
    const ownCookie = `tm_session=${own!.value}`
    expect((await me(ownCookie)).status).toBe(200)
    await page.click('button[aria-label="Sign out"]')
    await page.waitForURL(/\/signin/)
    expect((await me(ownCookie)).status).toBe(401)

    expect(violations).toEqual([])
  })
})
