import { describe, expect, it } from 'vitest'
import { ReplayLoop } from './replay-loop.ts'

// Sleeps here are an hour long: a test passes only when the signal ends them.
const HOUR = 3_600_000

describe('replay loop state', () => {
  it('keeps each store its own backoff: one store succeeding does not reset the other', () => {
    const stop = new AbortController()
    const disk = new ReplayLoop(stop.signal, 10_000)
    const redis = new ReplayLoop(stop.signal, 10_000)
    disk.failed(new Error('clickhouse down'))
    expect(disk.failed(new Error('clickhouse down'))).toBe(400)
    redis.done(20, 0, 1)
    expect(disk.progress).toMatchObject({
      state: 'backing-off',
      backoffMs: 400,
      lastError: 'clickhouse down',
    })
    expect(redis.progress).toMatchObject({ state: 'replaying', backoffMs: 0, rows: 20, batches: 1 })
    disk.done(5, 1, 2)
    expect(disk.progress).toMatchObject({ backoffMs: 0, batches: 2, inserts: 1, quarantinedRows: 1 })
  })

  it('a wake reaches every sleeping loop, and stop ends every sleep', async () => {
    const stop = new AbortController()
    const a = new ReplayLoop(stop.signal, 10_000)
    const b = new ReplayLoop(stop.signal, 10_000)
    const sleeping = [a.sleep(HOUR), b.sleep(HOUR)]
    a.wake()
    b.wake()
    expect(await Promise.all(sleeping)).toEqual([true, true])
    const again = [a.sleep(HOUR), b.sleep(HOUR)]
    stop.abort()
    expect(await Promise.all(again)).toEqual([true, true])
    expect(a.stopped && b.stopped).toBe(true)
  })

  it('a wake while the loop is busy is kept for its next sleep, and spent by it', async () => {
    const stop = new AbortController()
    const loop = new ReplayLoop(stop.signal, 10_000)
    loop.failed(new Error('x'))
    loop.wake()
    expect(loop.progress.backoffMs).toBe(0)
    expect(await loop.sleep(HOUR)).toBe(true)
    // Spent: the next sleep runs its time (a short one here).
    expect(await loop.sleep(1)).toBe(false)
    stop.abort()
  })

  it('reports a loop that replayed nothing for a while as idle', () => {
    const loop = new ReplayLoop(new AbortController().signal, 10_000)
    loop.done(1, 0, 1, 1_000)
    expect(loop.snapshot(500, 1_200).state).toBe('replaying')
    expect(loop.snapshot(500, 2_000).state).toBe('idle')
  })
})
