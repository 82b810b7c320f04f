import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'

export const CHROMIUM_PATH = '/usr/bin/chromium'

export interface TestBrowser {
  context: BrowserContext
  close(): Promise<void>
}

/**
 * Debian's Chromium driven by playwright-core (no browser download), headless,
 * on a fresh profile directory per launch so no state leaks between runs.
 * Playwright takes the profile as the persistent context's user-data-dir.
 */
export async function launchBrowser(
  opts: { viewport?: { width: number; height: number }; timezoneId?: string } = {},
): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'tokenmeter-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
    viewport: opts.viewport ?? { width: 1440, height: 900 },
    timezoneId: opts.timezoneId ?? 'UTC',
    locale: 'en-US',
    acceptDownloads: true,
    colorScheme: 'light',
  })
  return {
    context,
    async close() {
      await context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
