import { periodWindow } from '../budgets/budget-period.ts'
import { keysCountedBy } from '../budgets/budget-rules.ts'
import { recordedSpendNanos } from '../budgets/budget-spend.ts'
import type { ApiKey, Budget } from '../core/identity/entities.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import { toClickHouseTime } from '../core/usage/usage-row.ts'
import type { AlertCandidate } from './alert.ts'

export interface AnomalyOptions {
  /** Spike: an hour at least this many times the key's busiest hour of the lookback... */
  spikeFactor: number
  /** ...and at least this much, so pennies never page anyone. */
  spikeMinUsd: number
  spikeLookbackDays: number
  /** Runaway day: a day at least this many times the key's median day... */
  runawayFactor: number
  runawayMinUsd: number
  runawayHistoryDays: number
  /** ...over at least this many active days of history. */
  runawayMinDays: number
  /** Forecast only once this share of the period has passed (early projections are noise). */
  forecastMinElapsed: number
}

export const DEFAULT_ANOMALY_OPTIONS: AnomalyOptions = {
  spikeFactor: 10,
  spikeMinUsd: 1,
  spikeLookbackDays: 7,
  runawayFactor: 5,
  runawayMinUsd: 5,
  runawayHistoryDays: 28,
  runawayMinDays: 7,
  forecastMinElapsed: 0.1,
}

const HOUR = 3_600_000
const DAY = 86_400_000
const chSec = (ms: number) => toClickHouseTime(ms).slice(0, 19)
const iso = (v: string) => new Date(`${v.replace(' ', 'T')}Z`).toISOString()
/** A time as people read it in a message or a chat notification: `2025-03-20 14:00 UTC`. */
const readable = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`
const money = (n: number) => `$${n.toFixed(2)}`

interface WindowRow {
  key_id: string
  at: string
  spend: number
  baseline: number
  history: number
}

/**
 * Spike on a previously quiet key: an hour (from usage_1h) that costs at least
 * spikeFactor x the key's busiest hour over the lookback before it, for a key
 * seen at least a day before (so a brand-new key's first hour is not a spike).
 * Evaluates every hour bucket in [from, to), so one call also backfills.
 */
export async function detectSpikes(
  wh: Warehouse,
  range: { fromMs: number; toMs: number },
  o: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS,
): Promise<AlertCandidate[]> {
  const rows = await wh.query<WindowRow>(
    `SELECT key_id, toString(bucket) AS at, spend, baseline, history FROM (
       SELECT key_id, bucket, spend,
         max(spend) OVER w AS baseline,
         toFloat64(toUInt32(bucket) - toUInt32(min(bucket) OVER (PARTITION BY key_id))) AS history
       FROM (
         SELECT key_id, bucket, toFloat64(sum(cost_usd)) AS spend FROM usage_1h
         WHERE bucket >= {histFrom:DateTime('UTC')} AND bucket < {to:DateTime('UTC')} AND key_id != ''
         GROUP BY key_id, bucket
       )
       WINDOW w AS (PARTITION BY key_id ORDER BY toUInt32(bucket) RANGE BETWEEN {lookback:UInt32} PRECEDING AND 1 PRECEDING)
     )
     WHERE bucket >= {from:DateTime('UTC')} AND history >= 86400
       AND spend >= {minUsd:Float64} AND spend >= {factor:Float64} * baseline
     ORDER BY at, key_id`,
    {
      histFrom: chSec(Math.floor(range.fromMs / HOUR) * HOUR - o.spikeLookbackDays * DAY),
      from: chSec(Math.floor(range.fromMs / HOUR) * HOUR),
      to: chSec(range.toMs),
      lookback: (o.spikeLookbackDays * DAY) / 1000,
      minUsd: o.spikeMinUsd,
      factor: o.spikeFactor,
    },
  )
  return rows.map((r) => ({
    kind: 'spike',
    subjectType: 'key',
    subjectId: r.key_id,
    windowStart: iso(r.at),
    level: 0,
    severity: 'warning',
    message: `Spike on a quiet key: ${money(r.spend)} in the hour from ${readable(Date.parse(iso(r.at)))}, its busiest hour in the previous ${o.spikeLookbackDays} days was ${money(r.baseline)}.`,
    valueUsd: r.spend,
    baselineUsd: r.baseline,
    details: { keyId: r.key_id, hourStart: iso(r.at), lookbackDays: o.spikeLookbackDays },
  }))
}

/**
 * Runaway day: a UTC day (from usage_1d) at least runawayFactor x the key's
 * median active day over the history before it. Partial days count, so a day
 * running away is caught while it runs.
 */
export async function detectRunawayDays(
  wh: Warehouse,
  range: { fromMs: number; toMs: number },
  o: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS,
): Promise<AlertCandidate[]> {
  const fromDay = Math.floor(range.fromMs / DAY) * DAY
  const rows = await wh.query<WindowRow>(
    `SELECT key_id, toString(bucket) AS at, spend, baseline, history FROM (
       SELECT key_id, bucket, spend,
         median(spend) OVER w AS baseline,
         toFloat64(count() OVER w) AS history
       FROM (
         SELECT key_id, bucket, toFloat64(sum(cost_usd)) AS spend FROM usage_1d
         WHERE bucket >= {histFrom:DateTime('UTC')} AND bucket < {to:DateTime('UTC')} AND key_id != ''
         GROUP BY key_id, bucket
       )
       WINDOW w AS (PARTITION BY key_id ORDER BY toUInt32(bucket) RANGE BETWEEN {history:UInt32} PRECEDING AND 1 PRECEDING)
     )
     WHERE bucket >= {from:DateTime('UTC')} AND history >= {minDays:Float64}
       AND spend >= {minUsd:Float64} AND spend >= {factor:Float64} * baseline
     ORDER BY at, key_id`,
    {
      histFrom: chSec(fromDay - o.runawayHistoryDays * DAY),
      from: chSec(fromDay),
      to: chSec(range.toMs),
      history: (o.runawayHistoryDays * DAY) / 1000,
      minDays: o.runawayMinDays,
      minUsd: o.runawayMinUsd,
      factor: o.runawayFactor,
    },
  )
  return rows.map((r) => ({
    kind: 'runaway_day',
    subjectType: 'key',
    subjectId: r.key_id,
    windowStart: iso(r.at),
    level: 0,
    severity: 'warning',
    message: `Runaway day: ${money(r.spend)} on ${iso(r.at).slice(0, 10)} (UTC), ${(r.spend / Math.max(r.baseline, 1e-9)).toFixed(1)}x the key's typical day of ${money(r.baseline)}.`,
    valueUsd: r.spend,
    baselineUsd: r.baseline,
    details: { keyId: r.key_id, day: iso(r.at).slice(0, 10), historyDays: r.history },
  }))
}

/**
 * Per budget at `now`: a forecast (spend so far, extrapolated linearly over
 * the period, ends above the cap while it is still under it) and threshold
 * crossings (each configured percentage once per period; since a hard cap is
 * approached rather than crossed, 100 % counts as reached within 1 % of it).
 */
export async function detectBudgetAlerts(
  wh: Warehouse,
  budgets: readonly Budget[],
  nowMs: number,
  o: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS,
  keys: readonly ApiKey[] = [],
): Promise<AlertCandidate[]> {
  const out: AlertCandidate[] = []
  for (const b of budgets) {
    const w = periodWindow(b, nowMs)
    const window = { startMs: w.startMs, endMs: nowMs }
    const spent = (await recordedSpendNanos(wh, b, window, keysCountedBy(b, keys))) / 1e9
    const base = {
      subjectType: 'budget' as const,
      subjectId: b.budgetId,
      windowStart: new Date(w.startMs).toISOString(),
      valueUsd: spent,
      baselineUsd: b.capUsd,
    }
    const details = {
      budgetId: b.budgetId,
      scope: b.scope,
      scopeId: b.scopeId,
      period: b.period,
      capUsd: b.capUsd,
      resetsAt: new Date(w.endMs).toISOString(),
    }
    const elapsed = (nowMs - w.startMs) / (w.endMs - w.startMs)
    const projected = elapsed > 0 ? spent / elapsed : 0
    if (elapsed >= o.forecastMinElapsed && spent < b.capUsd && projected >= b.capUsd) {
      const exhaustAt = w.startMs + (b.capUsd / projected) * (w.endMs - w.startMs)
      out.push({
        ...base,
        kind: 'forecast',
        level: 0,
        severity: 'warning',
        message: `Budget ${b.budgetId} (${b.scope} ${b.scopeId}) is on course to reach its ${money(b.capUsd)} ${b.period} cap around ${readable(exhaustAt)}, before the period ends: ${money(spent)} spent, ${money(projected)} projected.`,
        details: {
          ...details,
          projectedUsd: Math.round(projected * 100) / 100,
          exhaustAt: new Date(exhaustAt).toISOString(),
        },
      })
    }
    for (const t of b.thresholds) {
      const reached = t >= 100 ? spent >= b.capUsd * 0.99 : spent >= (b.capUsd * t) / 100
      if (!reached) continue
      out.push({
        ...base,
        kind: 'threshold',
        level: t,
        severity: t >= 100 ? 'critical' : t >= 80 ? 'warning' : 'info',
        message:
          t >= 100
            ? `Budget ${b.budgetId} (${b.scope} ${b.scopeId}) is used up: ${money(spent)} of ${money(b.capUsd)} per ${b.period}; requests are blocked until ${readable(w.endMs)}.`
            : `Budget ${b.budgetId} (${b.scope} ${b.scopeId}) passed ${t} %: ${money(spent)} of ${money(b.capUsd)} per ${b.period}.`,
        details: { ...details, thresholdPercent: t },
      })
    }
  }
  return out
}
