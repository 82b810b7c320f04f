import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'

// The README's pictures in docs/screenshots. Every browser test writes them through here, and
// only when asked (`UPDATE_SCREENSHOTS=1`): an ordinary test run leaves the committed files alone.

export const SCREENSHOTS_DIR = join(import.meta.dirname, '../../docs/screenshots')
export const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1'

/**
 * Waits for running animations and transitions (chart tweens, a drawer sliding in) to end.
 * Endless ones (the live dot's pulse) never do and are left running.
 */
export async function animationsDone(page: Page): Promise<void> {
  await page.evaluate(() =>
    Promise.all(
      document
        .getAnimations()
        .filter((a) => Number.isFinite(Number(a.effect?.getComputedTiming().endTime)))
        // A cancelled animation (its element left the page) has ended as well.
        .map((a) => a.finished.catch(() => 'cancelled')),
    ),
  )
}

/**
 * Saves docs/screenshots/<name>.png when UPDATE_SCREENSHOTS=1, else does nothing. The whole page
 * by default; the viewport with `fullPage: false` (a fixed overlay is only right in the viewport).
 */
export async function saveScreenshot(
  page: Page,
  name: string,
  opts: { fullPage?: boolean } = {},
): Promise<void> {
  if (!UPDATE_SCREENSHOTS) return
  mkdirSync(SCREENSHOTS_DIR, { recursive: true })
  await animationsDone(page)
  await page.screenshot({ path: join(SCREENSHOTS_DIR, `${name}.png`), fullPage: opts.fullPage ?? true })
}
