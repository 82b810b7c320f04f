import { filterSchema } from '@tokenmeter/contract'
import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Warehouse } from '../core/storage/warehouse.ts'
import { createLiveHub } from './live-hub.ts'

// The hub's work bound, with the warehouse slowed down on purpose (an injected
// fault: every query waits until the test lets it go), so "at most N
// refreshes at once" is a count, not a race.
function slowWarehouse() {
  const waiting: (() => void)[] = []
  let queries = 0
  const wh = {
    query: () => {
      queries++
      return new Promise<never[]>((resolve) => waiting.push(() => resolve([])))
    },
  } as unknown as Warehouse
  return {
    wh,
    queries: () => queries,
    releaseAll() {
      for (const go of waiting.splice(0)) go()
    },
  }
}

const noRows = { onRecord: () => () => {} }
const sub = { send: () => {}, bufferedAmount: () => 0 }
const filter = (tag: string) => filterSchema.parse({ range: '24h', tags: tag })

describe('live hub work bound', () => {
  it('runs at most maxRefreshes refreshes at once; a topic left before its turn costs nothing', async () => {
    const slow = slowWarehouse()
    const hub = createLiveHub({
      log: pino({ enabled: false }),
      warehouse: slow.wh,
      store: {} as AdminStore,
      recorder: noRows,
      maxRefreshes: 2,
      pushMs: 60_000,
    })
    const leave = Array.from({ length: 6 }, (_, i) => hub.subscribe(filter(`t${i}`), { kind: 'all' }, sub))
    expect(hub.stats()).toMatchObject({
      topics: 6,
      refreshesRunning: 2,
      refreshesQueued: 4,
      refreshesStarted: 2,
    })
    // Two refreshes of two queries each reached the warehouse; nothing else did.
    expect(slow.queries()).toBe(4)
    // Four subscribers leave while their topics wait.
    for (const l of leave.slice(2)) l()
    slow.releaseAll()
    await vi.waitFor(() => expect(hub.stats().refreshesRunning).toBe(0))
    // None of the abandoned topics was refreshed.
    expect(hub.stats()).toMatchObject({ topics: 2, refreshesQueued: 0, refreshesStarted: 2 })
    hub.close()
  })

  it('under pressure, views that already have numbers wait; new views still get their first', async () => {
    const slow = slowWarehouse()
    let pressed = false
    let ticks = 0
    const hub = createLiveHub({
      log: pino({ enabled: false }),
      warehouse: slow.wh,
      store: {} as AdminStore,
      recorder: noRows,
      maxRefreshes: 4,
      pushMs: 10,
      busyRefreshMs: 0,
      idleRefreshMs: 0,
      // Asked once per tick: the ticks counted here prove the hub looked and chose to wait.
      underPressure: () => {
        ticks++
        return pressed
      },
    })
    hub.subscribe(filter('a'), { kind: 'all' }, sub)
    slow.releaseAll()
    await vi.waitFor(() => expect(hub.stats().refreshesStarted).toBeGreaterThanOrEqual(2))
    pressed = true
    slow.releaseAll()
    await vi.waitFor(() => expect(hub.stats().refreshesRunning).toBe(0))
    const startedWhilePressed = hub.stats().refreshesStarted
    // A new view gets its first snapshot even now.
    hub.subscribe(filter('b'), { kind: 'all' }, sub)
    expect(hub.stats().refreshesStarted).toBe(startedWhilePressed + 1)
    slow.releaseAll()
    await vi.waitFor(() => expect(hub.stats().refreshesRunning).toBe(0))
    // The first view, which has numbers, is not refreshed while the pressure lasts.
    const settled = hub.stats().refreshesStarted
    const from = ticks
    await vi.waitFor(() => expect(ticks).toBeGreaterThanOrEqual(from + 5))
    expect(hub.stats().refreshesStarted).toBe(settled)
    // Pressure gone: it is refreshed again.
    pressed = false
    await vi.waitFor(() => expect(hub.stats().refreshesStarted).toBeGreaterThan(settled))
    hub.close()
  })
})
