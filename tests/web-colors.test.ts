import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { colorFor, OTHER_SERIES_ID, PALETTE_SIZE, paletteIndex, seriesColor } from '../web/src/lib/colors.ts'

// The dashboard's series colours: one per id whatever the page or filter (the browser side is in
// tests/web-a11y.test.ts), from a palette people with a colour-vision deficiency can still tell apart.

const CSS = readFileSync(join(import.meta.dirname, '../web/src/app.css'), 'utf8')

/** The --s1..--sN values declared in one rule block of app.css. */
function paletteOf(selector: string): string[] {
  const start = CSS.indexOf(`${selector} {`)
  expect(start, selector).toBeGreaterThanOrEqual(0)
  const block = CSS.slice(start, CSS.indexOf('\n}', start))
  return Array.from({ length: PALETTE_SIZE }, (_, i) => {
    const m = block.match(new RegExp(`--s${i + 1}:\\s*(#[0-9a-f]{6});`, 'i'))
    expect(m, `${selector} --s${i + 1}`).not.toBeNull()
    return m![1]!.toLowerCase()
  })
}

type Vec = [number, number, number]
const linear = (hex: string): Vec =>
  [1, 3, 5].map((i) => {
    const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4
  }) as Vec

// Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear sRGB.
const VISION: Record<string, number[][]> = {
  normal: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  protanopia: [
    [0.152286, 1.052583, -0.204868],
    [0.114503, 0.786281, 0.099216],
    [-0.003882, -0.048116, 1.051998],
  ],
  deuteranopia: [
    [0.367322, 0.860646, -0.227968],
    [0.280085, 0.672501, 0.047413],
    [-0.01182, 0.04294, 0.968881],
  ],
  tritanopia: [
    [1.255528, -0.076749, -0.178779],
    [-0.078411, 0.930809, 0.147602],
    [0.004733, 0.691367, 0.3039],
  ],
}

/** CIE L*a*b* (D65) of a linear sRGB colour as seen with the given vision. */
function lab(hex: string, vision: number[][]): Vec {
  const l = linear(hex)
  const [r, g, b] = vision.map((row) =>
    Math.min(1, Math.max(0, row[0]! * l[0] + row[1]! * l[1] + row[2]! * l[2])),
  ) as Vec
  const x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
  const y = 0.2126 * r + 0.7152 * g + 0.0722 * b
  const z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116)
  return [116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))]
}
const deltaE = (a: Vec, b: Vec) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])

describe('series colours', () => {
  it('an id has one colour whatever else is on the page, in whatever order', () => {
    const ids = [
      'team-platform',
      'team-research',
      'team-growth',
      'gpt-4o',
      'gpt-4o-mini',
      'claude-sonnet-4',
      'checkout',
    ]
    const alone = new Map(ids.map((id) => [id, colorFor(id)]))
    // A page's result in another order, or with half the ids filtered out, changes no colour.
    for (const subset of [[...ids].reverse(), ids.filter((_, i) => i % 2 === 0), ids.slice(3)]) {
      for (const id of subset) expect(colorFor(id), id).toBe(alone.get(id))
    }
    for (const id of ids) expect(colorFor(id)).toMatch(/^var\(--s([1-9]|10)\)$/)
  })

  it('the colours people have learned do not move between releases', () => {
    // Pinned: a new palette order or hash would recolour every chart users already know.
    expect(['team-platform', 'team-research', 'team-growth'].map(paletteIndex)).toEqual([6, 0, 8])
    expect(['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'claude-haiku-3.5'].map(paletteIndex)).toEqual([
      4, 8, 2, 1,
    ])
  })

  it('"other" is grey, and no palette colour is', () => {
    expect(seriesColor(OTHER_SERIES_ID)).toBe('var(--text-3)')
    expect(seriesColor('gpt-4o')).toBe(colorFor('gpt-4o'))
    for (const selector of [':root', ':root[data-theme="dark"]']) {
      for (const hex of paletteOf(selector)) {
        const [, a, b] = lab(hex, VISION.normal!)
        expect(Math.hypot(a, b), `${selector} ${hex} chroma`).toBeGreaterThan(20)
      }
    }
  })

  it('every two palette colours stay apart with normal vision and with each colour-vision deficiency, in both themes', () => {
    const close: string[] = []
    for (const selector of [':root', ':root[data-theme="dark"]']) {
      const palette = paletteOf(selector)
      expect(new Set(palette).size, selector).toBe(PALETTE_SIZE)
      for (const [vision, matrix] of Object.entries(VISION)) {
        for (let i = 0; i < palette.length; i++) {
          for (let j = i + 1; j < palette.length; j++) {
            const d = deltaE(lab(palette[i]!, matrix), lab(palette[j]!, matrix))
            if (d < 12)
              close.push(
                `${selector} ${vision}: --s${i + 1} ${palette[i]} and --s${j + 1} ${palette[j]} (ΔE ${d.toFixed(1)})`,
              )
          }
        }
      }
    }
    expect(close).toEqual([])
  })
})
