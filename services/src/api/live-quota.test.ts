import { describe, expect, it } from 'vitest'
import { createLiveQuota } from './live-quota.ts'

describe('live quota', () => {
  it('caps sockets per user, not across users', () => {
    const q = createLiveQuota({ maxSockets: 2, perSec: 1, burst: 1 })
    expect([q.openSocket('a'), q.openSocket('a'), q.openSocket('a')]).toEqual([true, true, false])
    expect(q.openSocket('b')).toBe(true)
    q.closeSocket('a')
    expect(q.openSocket('a')).toBe(true)
  })

  it('refills subscribe tokens at perSec up to burst', () => {
    let t = 0
    const q = createLiveQuota({ maxSockets: 10, perSec: 2, burst: 3, now: () => t })
    expect([1, 2, 3, 4].map(() => q.trySubscribe('a'))).toEqual([true, true, true, false])
    t = 499
    expect(q.trySubscribe('a')).toBe(false)
    t = 500
    expect(q.trySubscribe('a')).toBe(true)
    // Another user's bucket is their own.
    expect(q.trySubscribe('b')).toBe(true)
    // A long pause refills to the burst, not beyond.
    t = 60_000
    expect([1, 2, 3, 4].map(() => q.trySubscribe('a'))).toEqual([true, true, true, false])
  })

  it('forgets a user with no sockets and a full bucket', () => {
    let t = 0
    const q = createLiveQuota({ maxSockets: 1, perSec: 1, burst: 1, now: () => t })
    q.openSocket('a')
    q.trySubscribe('a')
    t = 5_000
    q.closeSocket('a')
    expect(q.sockets('a')).toBe(0)
  })
})
