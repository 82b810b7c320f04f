import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import type { Warehouse } from '../storage/warehouse.ts'
import { createUsageRecorder } from './usage-recorder.ts'
import type { UsageBatch, UsageRow } from './usage-row.ts'

// A burst of batches must not all be handed to ClickHouse at once: queued
// inside the engine they time out and spill rows ClickHouse then also stores
// (measured in docs/BENCHMARKS.md). The warehouse here holds every insert
// until the test lets it go, so concurrency is observed, not timed.
function heldWarehouse() {
  let active = 0
  let maxActive = 0
  let inserted = 0
  const waiters: (() => void)[] = []
  const wh = {
    async insertRows(_table: string, rows: readonly object[]) {
      active++
      maxActive = Math.max(maxActive, active)
      await new Promise<void>((resolve) => waiters.push(resolve))
      active--
      inserted += rows.length
    },
  } as unknown as Warehouse
  return {
    wh,
    stats: () => ({ active, maxActive, inserted }),
    releaseAll: () => {
      for (const w of waiters.splice(0)) w()
    },
  }
}

const row = (i: number) => ({ request_id: `r${i}` }) as unknown as UsageRow

describe('usage recorder', () => {
  it('keeps at most two inserts in flight and lands every batch of a burst', async () => {
    const held = heldWarehouse()
    const spilled: UsageBatch[] = []
    const recorder = createUsageRecorder({
      warehouse: held.wh,
      spill: { spill: async (b) => void spilled.push(b) },
      maxRows: 10,
      flushMs: 60_000,
      insertTimeoutMs: 10_000,
      logger: pino({ enabled: false }),
    })
    for (let i = 0; i < 100; i++) recorder.record(row(i))
    expect(held.stats().active).toBe(2)
    expect(recorder.stats().pendingRows).toBe(80)
    const flushed = recorder.flush()
    while (held.stats().inserted < 100) {
      held.releaseAll()
      await new Promise((r) => setImmediate(r))
    }
    await flushed
    expect(held.stats().maxActive).toBe(2)
    expect(spilled).toEqual([])
    expect(recorder.stats()).toMatchObject({ recorded: 100, inserted: 100, spilled: 0, pendingRows: 0 })
    await recorder.close()
  })

  it('counts every inserted row when two batch inserts finish concurrently', async () => {
    // `stats.inserted += await insertBatch()` read the counter before the
    // await, so with two inserts in flight one batch's rows were lost from it.
    const held = heldWarehouse()
    const recorder = createUsageRecorder({
      warehouse: held.wh,
      insertBatch: async (batch) => {
        await held.wh.insertRows('requests', batch.rows)
        return { inserted: batch.rows.length }
      },
      maxRows: 10,
      flushMs: 60_000,
      insertTimeoutMs: 10_000,
      logger: pino({ enabled: false }),
    })
    for (let i = 0; i < 100; i++) recorder.record(row(i))
    const flushed = recorder.flush()
    while (held.stats().inserted < 100) {
      held.releaseAll()
      await new Promise((r) => setImmediate(r))
    }
    await flushed
    expect(recorder.stats()).toMatchObject({ recorded: 100, inserted: 100, pendingRows: 0 })
    await recorder.close()
  })

  it('sends the oldest waiting batch down the outage path once the backlog is full', async () => {
    const held = heldWarehouse()
    const spilled: UsageBatch[] = []
    const recorder = createUsageRecorder({
      warehouse: held.wh,
      spill: { spill: async (b) => void spilled.push(b) },
      maxRows: 1,
      flushMs: 60_000,
      insertTimeoutMs: 10_000,
      logger: pino({ enabled: false }),
    })
    // 2 in flight + 16 waiting fit; the next 2 push the 2 oldest waiting ones out.
    for (let i = 0; i < 20; i++) recorder.record(row(i))
    await new Promise((r) => setImmediate(r))
    expect(spilled.map((b) => b.rows[0]!.request_id)).toEqual(['r2', 'r3'])
    const flushed = recorder.flush()
    while (held.stats().inserted < 18) {
      held.releaseAll()
      await new Promise((r) => setImmediate(r))
    }
    await flushed
    expect(recorder.stats()).toMatchObject({ recorded: 20, inserted: 18, spilled: 2, pendingRows: 0 })
    await recorder.close()
  })
})
