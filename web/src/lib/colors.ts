import { OTHER_SERIES_ID } from '@tokenmeter/contract/series-id'

// One colour per id everywhere (badge, stack, legend, avatar), the same on every page, with any
// filter and after a reload: picked by hashing the id itself, never by its position in a result.
// The palette (--s1..--s10 in app.css) stays apart for the common colour-vision deficiencies and
// has no grey: grey means "other" (tests/web-colors.test.ts checks both). Ten colours for any
// number of ids means two ids can share one; legends and tooltips name every series.
export const PALETTE_SIZE = 10
const PALETTE = Array.from({ length: PALETTE_SIZE }, (_, i) => `var(--s${i + 1})`)

/** The palette slot of an id (FNV-1a over its UTF-16 code units): a pure function of the id. */
export function paletteIndex(id: string): number {
  let h = 2166136261
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return Math.abs(h) % PALETTE_SIZE
}

export function colorFor(id: string): string {
  return PALETTE[paletteIndex(id)] as string
}

/** The API's id for the series that sums every group past the split limit (docs/API.md). */
export { OTHER_SERIES_ID }

/** Muted for "other" (it is not one thing), the stable hashed colour for everything else. */
export function seriesColor(id: string): string {
  return id === OTHER_SERIES_ID ? 'var(--text-3)' : colorFor(id)
}

/** Token kinds, not ids: input and cached share a hue family (cached is part of the input), output contrasts. */
export const TOKEN_COLORS = { input: 'var(--s1)', cached: 'var(--s5)', output: 'var(--s2)' }
