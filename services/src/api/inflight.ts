/**
 * Identical queries share one answer. A live push makes every viewer of a
 * filter re-read its chart and table; they arrive spread over up to a second
 * (each page's own refresh limit), not only in the same milliseconds. So:
 * - a query already running is shared by every identical request (as it
 *   always was: starting a second one would only add load);
 * - a finished answer is kept for `keepMs` and serves identical requests as
 *   long as `dataVersion()` is what it was when its query started. The
 *   version moves whenever ClickHouse may answer differently (a write
 *   finished, rows heard from another process), so a new row is never hidden
 *   behind a kept answer; `keepMs` bounds what the clock alone changes (a
 *   sliding range's edges).
 * Failed queries are not kept. At most `maxEntries` kept answers, the least
 * recently used dropped first. Callers put the caller's scope in the key:
 * one scope's answer never serves another.
 */
export interface InflightOptions {
  /** How long a finished answer is reused (0: only while its query runs). */
  keepMs?: number
  maxEntries?: number
  dataVersion?: () => string | number
  now?: () => number
}

interface Kept {
  answer: unknown
  version: string | number
  doneAt: number
}

export function createInflight(opts: InflightOptions = {}) {
  const keepMs = opts.keepMs ?? 0
  const maxEntries = opts.maxEntries ?? 500
  const dataVersion = opts.dataVersion ?? (() => 0)
  const now = opts.now ?? Date.now
  const running = new Map<string, Promise<unknown>>()
  // Map order is recency order: a hit moves to the end, the first entry is the least recently used.
  const kept = new Map<string, Kept>()

  function keep(key: string, entry: Kept) {
    kept.delete(key)
    kept.set(key, entry)
    for (const old of kept.keys()) {
      if (kept.size <= maxEntries) break
      kept.delete(old)
    }
  }

  return {
    share<T>(key: string, run: () => Promise<T>): Promise<T> {
      const version = dataVersion()
      const hit = kept.get(key)
      if (hit && hit.version === version && now() - hit.doneAt < keepMs) {
        keep(key, hit)
        return Promise.resolve(hit.answer as T)
      }
      const existing = running.get(key)
      if (existing) return existing as Promise<T>
      const p = run()
      running.set(key, p)
      p.then(
        (answer) => {
          running.delete(key)
          if (keepMs > 0) keep(key, { answer, version, doneAt: now() })
        },
        () => running.delete(key),
      )
      return p
    },
    /** Queries running now. */
    size: () => running.size,
    /** Finished answers held (expired ones go when asked again or when evicted). */
    keptSize: () => kept.size,
  }
}
