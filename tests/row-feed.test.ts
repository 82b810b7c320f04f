import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRowFeed, type RowFeed } from '../services/src/core/usage/row-feed.ts'
import { createUsageRecorder, type UsageRecorder } from '../services/src/core/usage/usage-recorder.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

// Two "processes" (recorder + feed each) sharing one real redis-server: what a
// gateway records must reach live subscribers in an API process, once.
let redis: RedisProcess
let stack: TestStack
let feeds: RowFeed[] = []
const recorders: UsageRecorder[] = []

function recorder(): UsageRecorder {
  const r = createUsageRecorder({
    warehouse: stack.core.warehouse,
    maxRows: 1_000_000,
    flushMs: 3_600_000,
    insertTimeoutMs: 1_000,
    logger: pino({ enabled: false }),
  })
  recorders.push(r)
  return r
}

function row(): UsageRow {
  return {
    request_id: randomUUID(),
    started_at: '2026-11-21 10:00:00.000',
    ended_at: '2026-11-21 10:00:01.000',
    key_id: 'k1',
    key_prefix: 'tm_abc…',
    user_id: 'u1',
    team_id: 't1',
    project: '',
    client_app: '',
    tags: [],
    provider: 'openai',
    model: 'm',
    upstream_model: 'm',
    endpoint: 'chat',
    streamed: false,
    status_code: 200,
    error_class: '',
    input_tokens: 1,
    output_tokens: 2,
    cached_read_tokens: 0,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: '0.000000100',
    latency_ms: 5,
    ttft_ms: 0,
    batch_id: '',
  }
}

beforeAll(async () => {
  redis = await startRedis()
  stack = await startTestStack()
})
afterAll(async () => {
  for (const f of feeds) await f.close()
  for (const r of recorders) await r.close()
  await stack?.close()
  await redis?.stop()
})

/**
 * Pub/sub drops what is published before SUBSCRIBE took effect: records a
 * probe row on one side until the other side hears one of them. Redis keeps
 * a channel's order, so once a probe is heard everything published before it
 * has been delivered too.
 */
async function untilHeard(from: UsageRecorder, heard: string[], probes: Set<string>) {
  await expect
    .poll(
      () => {
        if (heard.some((id) => probes.has(id))) return true
        const probe = row()
        probes.add(probe.request_id)
        from.record(probe)
        return false
      },
      { timeout: 10_000, interval: 100 },
    )
    .toBe(true)
}

describe('row feed across processes', () => {
  it('delivers a row recorded in one process to listeners in another, exactly once each', async () => {
    const gateway = recorder()
    const api = recorder()
    const gatewayFeed = createRowFeed({
      recorder: gateway,
      redisUrl: redis.url,
      log: pino({ enabled: false }),
    })
    const apiFeed = createRowFeed({ recorder: api, redisUrl: redis.url, log: pino({ enabled: false }) })
    feeds = [gatewayFeed, apiFeed]
    const seenByApi: string[] = []
    const seenByGateway: string[] = []
    apiFeed.onRecord((r) => seenByApi.push(r.request_id))
    gatewayFeed.onRecord((r) => seenByGateway.push(r.request_id))
    const probes = new Set<string>()
    const real = (ids: string[]) => ids.filter((id) => !probes.has(id))
    await untilHeard(gateway, seenByApi, probes)

    const sent = [row(), row(), row()]
    for (const r of sent) gateway.record(r)
    const ids = sent.map((r) => r.request_id)
    await expect.poll(() => real(seenByApi), { timeout: 5_000 }).toEqual(ids)
    // The publisher hears its own rows locally, not a second time through Redis:
    // a probe from the other side, published after them, is the barrier.
    await untilHeard(api, seenByGateway, probes)
    expect(real(seenByGateway)).toEqual(ids)
    expect(real(seenByApi)).toEqual(ids)
  })
})
