import { setTimeout as delay } from 'node:timers/promises'

/** What one store's replay loop (the disk spool, or the Redis queue) is doing. */
export interface StoreProgress {
  state: 'idle' | 'replaying' | 'backing-off' | 'stopped'
  batches: number
  /** ClickHouse inserts that carried them: fewer than batches when runs of batches were merged. */
  inserts: number
  rows: number
  quarantinedRows: number
  backoffMs: number
  lastError: string | undefined
  lastBatchAt: number | undefined
}

export function idleStoreProgress(state: StoreProgress['state'] = 'stopped'): StoreProgress {
  return {
    state,
    batches: 0,
    inserts: 0,
    rows: 0,
    quarantinedRows: 0,
    backoffMs: 0,
    lastError: undefined,
    lastBatchAt: undefined,
  }
}

const MIN_BACKOFF_MS = 200

/**
 * The state of one replay loop, owned by that loop alone: its backoff, its
 * progress and its wake-up. The disk and Redis loops each have one, so one
 * store's success does not reset the other's backoff, and a wake-up reaches
 * every sleeping loop.
 *
 * Sleeps end early through an AbortSignal: the loop's own wake signal (ops
 * "replay now"), or the worker's stop signal. A wake that arrives while the
 * loop is busy is kept (the signal stays aborted) and ends its next sleep at
 * once, so it cannot be lost between two sleeps.
 */
export class ReplayLoop {
  readonly progress: StoreProgress = idleStoreProgress('idle')
  #wake = new AbortController()
  readonly #stop: AbortSignal
  readonly #maxBackoffMs: number

  constructor(stop: AbortSignal, maxBackoffMs: number) {
    this.#stop = stop
    this.#maxBackoffMs = maxBackoffMs
  }

  /** One insert landed: this loop's backoff is over. */
  done(rows: number, quarantined: number, batches: number, now = Date.now()) {
    const p = this.progress
    p.batches += batches
    p.inserts++
    p.rows += rows
    p.quarantinedRows += quarantined
    p.lastBatchAt = now
    p.state = 'replaying'
    p.backoffMs = 0
  }

  /** ClickHouse did not take an insert: doubles this loop's backoff and returns it. */
  failed(err: unknown): number {
    const p = this.progress
    p.backoffMs = Math.min(Math.max(p.backoffMs * 2, MIN_BACKOFF_MS), this.#maxBackoffMs)
    p.lastError = String((err as Error)?.message ?? err).slice(0, 300)
    p.state = 'backing-off'
    return p.backoffMs
  }

  /** Skip the backoff and look for work now; kept until the loop's next sleep if it is busy. */
  wake() {
    this.progress.backoffMs = 0
    this.#wake.abort()
  }

  /**
   * The loop's progress as of now. The Redis loop is driven by BullMQ and has
   * no "nothing to do" step of its own: a loop that replayed nothing for
   * quietMs is reported idle.
   */
  snapshot(quietMs: number, now = Date.now()): StoreProgress {
    const p = { ...this.progress }
    if (p.state === 'replaying' && (p.lastBatchAt ?? 0) < now - quietMs) p.state = 'idle'
    return p
  }

  get stopped(): boolean {
    return this.#stop.aborted
  }

  /** Resolves true when cut short (woken or stopped), false when the time ran out. */
  async sleep(ms: number): Promise<boolean> {
    const signal = AbortSignal.any([this.#wake.signal, this.#stop])
    try {
      await delay(ms, undefined, { signal })
      return false
    } catch (err) {
      if (!signal.aborted) throw err
      return true
    } finally {
      // A wake is spent by the sleep it ended (or would have ended).
      if (this.#wake.signal.aborted) this.#wake = new AbortController()
    }
  }
}
