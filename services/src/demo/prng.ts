/**
 * Small, fast, seedable randomness for synthetic data. Not for secrets:
 * keys and tokens come from node:crypto. Everything here is a pure function
 * of its seed so a generator run can be reproduced (and split by hour across
 * workers) exactly.
 */
export type Rng = () => number

/** 32-bit string/number mix (FNV-1a then a murmur finaliser), to derive sub-seeds. */
export function hash32(...parts: (string | number)[]): number {
  let h = 0x811c9dc5
  for (const part of parts) {
    const s = String(part)
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i)
      h = Math.imul(h, 0x01000193)
    }
    h ^= 0x7c
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** sfc32: passes PractRand to 2^40+, a handful of integer ops per draw. Returns [0, 1). */
export function createRng(seed: number): Rng {
  // State stays int32 throughout (every op ends in `| 0` or a shift), which
  // keeps V8 on small-integer fast paths.
  let a = 0x9e3779b9 | 0
  let b = 0x243f6a88 | 0
  let c = 0xb7e15162 | 0
  let d = seed | 0
  const next = () => {
    let t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    t = (t + d) | 0
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  // The first outputs of sfc32 still carry the seed's structure.
  for (let i = 0; i < 15; i++) next()
  return next
}

/**
 * Walker's alias method: O(1) draws from a fixed discrete distribution with
 * one uniform number, which keeps per-row sampling cheap at millions of rows/s.
 */
export interface AliasTable {
  readonly size: number
  /** Index drawn for a uniform u in [0, 1). */
  pick(u: number): number
}

export function createAliasTable(weights: readonly number[]): AliasTable {
  const n = weights.length
  if (n === 0) throw new Error('alias table needs at least one weight')
  const total = weights.reduce((s, w) => s + Math.max(0, w), 0)
  if (!(total > 0)) throw new Error('alias table needs a positive total weight')
  const prob = new Float64Array(n)
  const alias = new Int32Array(n)
  const scaled = weights.map((w) => (Math.max(0, w) * n) / total)
  const small: number[] = []
  const large: number[] = []
  scaled.forEach((p, i) => {
    if (p < 1) small.push(i)
    else large.push(i)
  })
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number
    const l = large.pop() as number
    prob[s] = scaled[s] as number
    alias[s] = l
    scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1
    if ((scaled[l] as number) < 1) small.push(l)
    else large.push(l)
  }
  for (const i of large) prob[i] = 1
  for (const i of small) prob[i] = 1
  return {
    size: n,
    pick(u) {
      const x = u * n
      const i = x | 0
      return x - i < (prob[i] as number) ? i : (alias[i] as number)
    },
  }
}

/** Zipf-like weights 1/rank^s: a few heavy users, a long tail. */
export function zipfWeights(n: number, s: number): number[] {
  return Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s)
}

/** Fisher-Yates with the given rng (returns a new array). */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    const t = out[i] as T
    out[i] = out[j] as T
    out[j] = t
  }
  return out
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628274631,
  ]
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572]
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ]
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416]
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number]
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number]
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number]
  const [d0, d1, d2, d3] = d as [number, number, number, number]
  const tail = (q: number) =>
    (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1)
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)))
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)))
  const q = p - 0.5
  const r = q * q
  return (
    ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) /
    (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1)
  )
}

const NORMAL_TABLE = Float64Array.from({ length: 8192 }, (_, i) => normalQuantile((i + 0.5) / 8192))

/**
 * Standard normal by table lookup: one uniform draw, no transcendental call.
 * Quantised to 8192 levels and clipped near ±3.8 sigma, which synthetic
 * token counts and latencies do not notice.
 */
export function createTableNormal(rng: Rng): () => number {
  return () => NORMAL_TABLE[(rng() * 8192) | 0] as number
}
