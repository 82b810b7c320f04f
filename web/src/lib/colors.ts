import { OTHER_SERIES_ID } from '@tokenmeter/contract/series-id'

// One colour per name everywhere (badge, stack, legend), stable across pages
// and reloads: picked by hashing the id into the theme's series palette.
const PALETTE = Array.from({ length: 10 }, (_, i) => `var(--s${i + 1})`)

export function colorFor(id: string): string {
  let h = 2166136261
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return PALETTE[Math.abs(h) % PALETTE.length] as string
}

/** The API's id for the series that sums every group past the split limit (docs/API.md). */
export { OTHER_SERIES_ID }

/** Muted for "other" (it is not one thing), the stable hashed colour for everything else. */
export function seriesColor(id: string): string {
  return id === OTHER_SERIES_ID ? 'var(--text-3)' : colorFor(id)
}

export const TOKEN_COLORS = { input: 'var(--s1)', cached: 'var(--s2)', output: 'var(--s3)' }
