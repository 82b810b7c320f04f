import { randomUUID } from 'node:crypto'
import type { Warehouse } from '../services/src/core/storage/warehouse.ts'
import { toClickHouseTime } from '../services/src/core/usage/usage-row.ts'

const HOUR = 3_600_000

/** Deterministic noise in [0, 1) (mulberry32), so generated months are the same on every run. */
export function prng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One usage row per key and hour over [fromMs, toMs), costing costOf(hourStart) USD (skipped when 0). */
export async function insertHourly(
  wh: Warehouse,
  keyId: string,
  fromMs: number,
  toMs: number,
  costOf: (hourMs: number) => number,
): Promise<number> {
  const rows: object[] = []
  let total = 0
  for (let t = fromMs; t < toMs; t += HOUR) {
    const cost = Math.round(costOf(t) * 1e6) / 1e6
    if (cost <= 0) continue
    total += cost
    const at = t + 60_000
    rows.push({
      request_id: randomUUID(),
      started_at: toClickHouseTime(at),
      ended_at: toClickHouseTime(at + 100),
      key_id: keyId,
      key_prefix: `${keyId.slice(0, 10)}…`,
      user_id: `u_${keyId}`,
      team_id: 't_alerts',
      project: '',
      client_app: '',
      tags: [],
      provider: 'openai',
      model: 'gpt-4o-mini',
      upstream_model: 'gpt-4o-mini',
      endpoint: '/v1/chat/completions',
      streamed: false,
      status_code: 200,
      error_class: '',
      input_tokens: 100,
      output_tokens: 100,
      cached_read_tokens: 0,
      cache_write_tokens: 0,
      tokens_estimated: false,
      cost_usd: cost.toFixed(9),
      latency_ms: 100,
      ttft_ms: 0,
      batch_id: '',
    })
  }
  await wh.insertRows('requests', rows)
  return total
}

/**
 * A normal working month for one key: busy office hours, quiet nights,
 * lighter weekends, +-30 % noise from hour to hour.
 */
export function normalDay(scaleUsd: number, seed: number) {
  const rand = prng(seed)
  return (t: number) => {
    const d = new Date(t)
    const hour = d.getUTCHours()
    const weekend = d.getUTCDay() === 0 || d.getUTCDay() === 6
    const diurnal = hour >= 8 && hour < 19 ? 1 : hour >= 6 && hour < 22 ? 0.4 : 0.1
    return scaleUsd * diurnal * (weekend ? 0.5 : 1) * (0.7 + 0.6 * rand())
  }
}
