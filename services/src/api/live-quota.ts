/**
 * Each user's share of live mode: how many sockets they hold open and how
 * fast they may (re)subscribe, across all their sockets. A token bucket per
 * user: `perSec` tokens a second up to `burst`; opening a socket or changing
 * its filters takes one. Entries vanish when a user has no socket and a full
 * bucket, so memory follows the users actually connected.
 */
export interface LiveQuotaOptions {
  maxSockets: number
  perSec: number
  burst: number
  now?: () => number
}

export interface LiveQuota {
  /** Takes a socket slot; false when the user already holds maxSockets. */
  openSocket(user: string): boolean
  closeSocket(user: string): void
  /** Takes a subscribe token; false when the user is subscribing too fast. */
  trySubscribe(user: string): boolean
  sockets(user: string): number
}

interface Share {
  sockets: number
  tokens: number
  at: number
}

export function createLiveQuota(opts: LiveQuotaOptions): LiveQuota {
  const now = opts.now ?? Date.now
  const shares = new Map<string, Share>()
  const shareOf = (user: string): Share => {
    let s = shares.get(user)
    if (!s) {
      s = { sockets: 0, tokens: opts.burst, at: now() }
      shares.set(user, s)
    }
    const t = now()
    s.tokens = Math.min(opts.burst, s.tokens + ((t - s.at) / 1000) * opts.perSec)
    s.at = t
    return s
  }
  const forget = (user: string, s: Share) => {
    if (s.sockets === 0 && s.tokens >= opts.burst) shares.delete(user)
  }
  return {
    openSocket(user) {
      const s = shareOf(user)
      if (s.sockets >= opts.maxSockets) return false
      s.sockets++
      return true
    },
    closeSocket(user) {
      const s = shareOf(user)
      s.sockets = Math.max(0, s.sockets - 1)
      forget(user, s)
    },
    trySubscribe(user) {
      const s = shareOf(user)
      if (s.tokens < 1) return false
      s.tokens -= 1
      return true
    },
    sockets: (user) => shares.get(user)?.sockets ?? 0,
  }
}
