import type { Dialog, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestBrowser } from './helpers/browser.ts'
import { TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { type SeededOrg, seedOrg } from './helpers/web-fixtures.ts'
import {
  apiGet,
  eventually,
  openBrowserPage,
  sendChat,
  signInWith,
  startDashboard,
} from './helpers/web-stack.ts'

// Seed 001 in Debian's Chromium: an admin limits a key's models in the key
// form; a member's "Available models" and "My API keys" pages (their keys
// only, by prefix; revoking one); the leaderboard network-wide for a member
// until an admin restricts it on the Settings page. Every number on screen is
// compared with the API answering the same person.

let stack: TestStack
let browser: TestBrowser
let page: Page
let org: SeededOrg
/** The key the admin creates in the first test (its plaintext is read off the page, once). */
let created: { keyId: string; plaintext: string } | undefined

const keyNamed = (name: string) => org.keys.find((k) => k.name === name)!

beforeAll(async () => {
  // DEMO=true: the built-in simulated provider (the demo's upstream) serves the sim-* facades.
  stack = await startDashboard({ DEMO: 'true' })
  org = await seedOrg(stack.core)
  ;({ browser, page } = await openBrowserPage())
  await signInWith(page, stack, TEST_ADMIN_TOKEN)
})

afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

describe("seed 001: a key's models, a member's models and keys, the leaderboard", () => {
  it('an admin sets allowed models in the key form and on a key; the card, the detail page and the gateway follow', async () => {
    await page.goto(`${stack.url}/admin/keys`)
    const form = page.locator('form.admin-form')
    await form.locator('select').selectOption('u-ken')
    await form.locator('input[placeholder^="e.g."]').fill('ken-claude')
    await form.locator('[data-control="models"]').fill('claude-*, sim-chat')
    await form.locator('button[type=submit]').click()
    const plaintext = (await page.locator('[data-secret] [data-plaintext]').textContent())!.trim()
    const listed = await apiGet<{ keys: { keyId: string; name: string; allowedModels: string[] }[] }>(
      stack,
      '/api/admin/keys',
    )
    const fresh = listed.keys.find((k) => k.name === 'ken-claude')!
    expect(fresh.allowedModels).toEqual(['claude-*', 'sim-chat'])
    created = { keyId: fresh.keyId, plaintext }
    await eventually(() =>
      page.locator(`tr[data-row="${fresh.keyId}"] [data-cell="models"]`).getAttribute('data-allowed-models'),
    ).toBe('claude-*,sim-chat')

    // An existing key, limited in place: same key, no new secret.
    const ken = keyNamed('ken-cli')
    const row = page.locator(`tr[data-row="${ken.keyId}"]`)
    await row.locator('[data-action="edit-models"]').click()
    await row.locator('[data-control="edit-models"]').fill('gpt-4o-mini')
    await row.locator('button[type=submit]').click()
    await eventually(() => row.locator('[data-cell="models"]').getAttribute('data-allowed-models')).toBe(
      'gpt-4o-mini',
    )
    expect(await sendChat(stack, ken.plaintext, 'sim-chat')).toBe(403)
    expect(await sendChat(stack, plaintext, 'sim-chat')).toBe(200)

    await page.goto(`${stack.url}/keys?range=30d`)
    const card = page.locator(`[data-key="${ken.keyId}"] [data-allowed-models]`)
    await eventually(() => card.textContent()).toContain('Models: gpt-4o-mini')
    await page.goto(`${stack.url}/keys/${ken.keyId}`)
    await eventually(() => page.locator('[data-key-info] [data-allowed-models]').textContent()).toBe(
      'Models: gpt-4o-mini',
    )
  })

  it('a member sees the models their keys may call, priced as the API says', async () => {
    const ken = keyNamed('ken-cli')
    await signInWith(page, stack, ken.plaintext)
    const want = await apiGet<{ models: { model: string; prices: { inputPerM: number } | null }[] }>(
      stack,
      '/api/models',
      ken.plaintext,
    )
    await page.goto(`${stack.url}/models`)
    const rows = page.locator('[data-table="models"] tbody tr')
    await eventually(() => rows.count()).toBe(want.models.length)
    const names = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-model')))
    expect(names).toEqual(want.models.map((m) => m.model))
    // Ken's keys: gpt-4o-mini on one, claude-* and sim-chat on the other; nothing else.
    expect(names).toContain('gpt-4o-mini')
    expect(names).toContain('sim-chat')
    expect(names).not.toContain('gpt-4o')
    expect(names.filter((n) => n !== 'gpt-4o-mini' && n !== 'sim-chat' && !n!.startsWith('claude-'))).toEqual(
      [],
    )
    await eventually(() => page.locator('[data-model="sim-chat"] [data-cell="input"]').textContent()).toBe(
      '$0.50',
    )
    const keys = page.locator('[data-keys] [data-key]')
    expect(await keys.count()).toBe(2)
    expect(
      await page.locator(`[data-keys] [data-key="${ken.keyId}"] [data-allowed-models]`).textContent(),
    ).toContain('gpt-4o-mini')

    await page.fill('[data-control="model-search"]', 'sonnet')
    await eventually(async () => {
      const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-model') ?? ''))
      return shown.length > 0 && shown.every((n) => n.includes('sonnet'))
    }).toBe(true)
  })

  it("a member's API keys page lists only their keys, by prefix, and revokes one", async () => {
    const ken = keyNamed('ken-cli')
    await page.goto(`${stack.url}/account/keys`)
    const rows = page.locator('[data-table="my-keys"] tbody tr')
    await eventually(() => rows.count()).toBe(2)
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-row')))
    expect(ids.sort()).toEqual([ken.keyId, created!.keyId].sort())
    const text = (await page.locator('main').textContent())!
    for (const k of org.keys) {
      expect(text).not.toContain(k.plaintext)
      if (k.userId !== 'u-ken') expect(text).not.toContain(k.name)
    }
    expect(text).not.toContain(created!.plaintext)
    const mine = await apiGet<{ keys: { keyId: string; spentUsd: number; prefix: string }[] }>(
      stack,
      '/api/me/keys?range=30d',
      ken.plaintext,
    )
    const kenRow = page.locator(`tr[data-row="${ken.keyId}"]`)
    const spent = mine.keys.find((k) => k.keyId === ken.keyId)!
    expect(spent.spentUsd).toBeGreaterThan(0)
    await eventually(() => kenRow.locator('[data-cell="spent"]').getAttribute('data-value')).toBe(
      String(spent.spentUsd),
    )
    expect(await kenRow.locator('[data-cell="prefix"]').textContent()).toBe(ken.prefix)

    // Revoke the other key (not the one this session came from): it stops at once.
    const accept = (d: Dialog) => void d.accept()
    page.once('dialog', accept)
    await page.locator(`tr[data-row="${created!.keyId}"] [data-action="revoke"]`).click()
    await eventually(() =>
      page.locator(`tr[data-row="${created!.keyId}"] [data-cell="status"]`).textContent(),
    ).toBe('revoked')
    expect(await sendChat(stack, created!.plaintext, 'sim-chat')).toBe(401)
    expect(await page.locator(`tr[data-row="${ken.keyId}"] [data-action="revoke"]`).count()).toBe(1)
  })

  it('the leaderboard is network-wide for a member until an admin restricts it on the settings page', async () => {
    const ken = keyNamed('ken-cli')
    await page.goto(`${stack.url}/leaderboard?range=30d`)
    await page.locator('[data-ranked="network"]').waitFor()
    const rows = page.locator('[data-table="leaderboard"] li')
    const all = await apiGet<{ rows: { id: string }[] }>(
      stack,
      '/api/leaderboard?range=30d&by=user&limit=20',
      ken.plaintext,
    )
    await eventually(() => rows.count()).toBe(all.rows.length)
    expect(all.rows.length).toBeGreaterThan(3)
    // Everyone is ranked; only Ken's own row opens a detail page.
    expect(await page.locator('[data-row="u-grace"]').count()).toBe(1)
    expect(await page.locator('[data-row="u-grace"] a').count()).toBe(0)
    expect(await page.locator('[data-row="u-ken"] a').count()).toBe(1)

    const choose = async (value: string) => {
      await signInWith(page, stack, TEST_ADMIN_TOKEN)
      await page.goto(`${stack.url}/admin/settings`)
      await page.locator(`input[name="leaderboardVisibility"][value="${value}"]`).check()
      await page.locator('[data-setting="leaderboard"] button[type=submit]').click()
      await page.locator('[data-saved]').waitFor()
      await signInWith(page, stack, ken.plaintext)
    }
    await choose('admins')
    await page.goto(`${stack.url}/leaderboard?range=30d`)
    await eventually(() => page.locator('[data-state="empty"] .title').textContent()).toBe(
      'The leaderboard is for admins here',
    )
    expect(await rows.count()).toBe(0)

    await choose('team')
    await page.goto(`${stack.url}/leaderboard?range=30d`)
    await page.locator('[data-ranked="team"]').waitFor()
    const team = org.keys.filter((k) => k.teamId === 'team-growth').map((k) => k.userId)
    await eventually(async () => {
      const ids = await rows.evaluateAll((lis) => lis.map((li) => li.getAttribute('data-row') ?? ''))
      return ids.length > 0 && ids.every((id) => team.includes(id))
    }).toBe(true)

    await choose('everyone')
    expect((await apiGet<{ settings: object }>(stack, '/api/admin/settings')).settings).toEqual({
      leaderboardVisibility: 'everyone',
    })
  })
})
