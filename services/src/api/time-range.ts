/**
 * Time ranges, time zones and the choice of rollup. Everything here is pure so
 * it can be reasoned about (and tested) without ClickHouse.
 *
 * A range is [fromMs, toMs) in UTC milliseconds plus the series buckets that
 * cover it in the caller's time zone. The rollups bucket in UTC, so a rollup
 * answers a range exactly only when every edge the answer depends on (from,
 * to and each bucket boundary inside) is a multiple of its bucket width.
 */

import { localMidnight, localParts, offsetMs } from '../core/time/time-zone.ts'

export type Granularity = '5m' | '1h' | '1d'
export type Source = 'usage_1d' | 'usage_1h' | 'usage_5m' | 'requests'
export type Preset = '24h' | '7d' | '14d' | '30d' | '90d'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
export const MAX_RANGE_DAYS = 731

const STEP: Record<Exclude<Granularity, '1d'>, number> = { '5m': 5 * MIN, '1h': HOUR }

// Coarsest first: the first whose width divides every edge answers the query.
const ROLLUPS: { source: Source; width: number }[] = [
  { source: 'usage_1d', width: DAY },
  { source: 'usage_1h', width: HOUR },
  { source: 'usage_5m', width: 5 * MIN },
]

function floorTo(g: Granularity, tz: string, ms: number): number {
  if (g === '1d') {
    const p = localParts(tz, ms)
    return localMidnight(tz, p.y, p.m, p.d)
  }
  const step = STEP[g]
  const local = ms + offsetMs(tz, ms)
  return ms - (((local % step) + step) % step)
}

function nextBucket(g: Granularity, tz: string, start: number): number {
  if (g === '1d') {
    const p = localParts(tz, start + 12 * HOUR)
    return localMidnight(tz, p.y, p.m, p.d + 1)
  }
  return start + STEP[g]
}

function granularityFor(spanMs: number): Granularity {
  if (spanMs <= 6 * HOUR) return '5m'
  if (spanMs <= 3 * DAY) return '1h'
  return '1d'
}

export interface TimeRange {
  fromMs: number
  toMs: number
  tz: string
  granularity: Granularity
  /** Start of each series bucket; the first may be earlier than fromMs (it is clipped). */
  buckets: number[]
  /** The table that answers the range exactly. */
  source: Source
}

export type RangeSpec =
  | { kind: 'preset'; preset: Preset }
  | { kind: 'custom'; fromMs: number; toMs: number }
  | { kind: 'month'; year: number; month: number }

/** Presets end at the end of the current bucket, so they align to rollups and include "now". */
export function resolveRange(
  spec: RangeSpec,
  tz: string,
  nowMs: number,
  granularity?: Granularity,
): TimeRange {
  let fromMs: number
  let toMs: number
  let g: Granularity
  if (spec.kind === 'preset') {
    if (spec.preset === '24h') {
      g = granularity ?? '1h'
      toMs = nextBucket('1h', tz, floorTo('1h', tz, nowMs))
      fromMs = toMs - DAY
    } else {
      g = granularity ?? '1d'
      const days = Number(spec.preset.replace('d', ''))
      const today = localParts(tz, nowMs)
      toMs = localMidnight(tz, today.y, today.m, today.d + 1)
      fromMs = localMidnight(tz, today.y, today.m, today.d - (days - 1))
    }
  } else if (spec.kind === 'month') {
    g = granularity ?? '1d'
    fromMs = localMidnight(tz, spec.year, spec.month, 1)
    toMs = localMidnight(tz, spec.year, spec.month + 1, 1)
  } else {
    fromMs = spec.fromMs
    toMs = spec.toMs
    g = granularity ?? granularityFor(toMs - fromMs)
  }
  const buckets: number[] = []
  for (let b = floorTo(g, tz, fromMs); b < toMs; b = nextBucket(g, tz, b)) buckets.push(b)
  const edges = [fromMs, toMs, ...buckets.filter((b) => b > fromMs)]
  return { fromMs, toMs, tz, granularity: g, buckets, source: pickSource(edges) }
}

export function pickSource(edges: number[]): Source {
  for (const r of ROLLUPS) if (edges.every((e) => e % r.width === 0)) return r.source
  return 'requests'
}

/** Index of the bucket holding `ms`, or -1 outside the range. */
export function bucketIndex(range: Pick<TimeRange, 'fromMs' | 'toMs' | 'buckets'>, ms: number): number {
  if (ms < range.fromMs || ms >= range.toMs) return -1
  const b = range.buckets
  let lo = 0
  let hi = b.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (b[mid]! <= ms) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** YYYY-MM-DD of an instant in a zone. */
export function localDate(tz: string, ms: number): string {
  const p = localParts(tz, ms)
  return `${p.y}-${String(p.m).padStart(2, '0')}-${String(p.d).padStart(2, '0')}`
}
