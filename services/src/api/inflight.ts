/**
 * Identical queries share one answer. A live push makes every viewer of a
 * filter re-read its chart and table; they arrive spread over up to a second
 * (each page's own refresh limit), not only in the same milliseconds. So:
 * - a query already running is shared by every identical request;
 * - a finished answer is kept for `keepMs` and serves identical requests;
 * both only while `dataVersion()` is what it was when the query started. The
 * version moves whenever ClickHouse may answer differently (a write finished,
 * rows heard from another process), so a new row is never hidden behind a
 * running or kept answer; `keepMs` bounds what the clock alone changes (a
 * sliding range's edges). A query started at a newer version replaces an
 * older one under the same key: the older one's answer is not kept.
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

interface Running {
  promise: Promise<unknown>
  version: string | number
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
  const running = new Map<string, Running>()
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
      const current = running.get(key)
      if (current?.version === version) return current.promise as Promise<T>
      const promise = run()
      const started: Running = { promise, version }
      running.set(key, started)
      /** Whether this query was still the latest of its key (then it is no longer running). */
      const settle = () => running.get(key) === started && running.delete(key)
      promise.then((answer) => {
        if (settle() && keepMs > 0) keep(key, { answer, version, doneAt: now() })
      }, settle)
      return promise
    },
    /** Keys with a query running now (the latest one of each). */
    size: () => running.size,
    /** Finished answers held (expired ones go when asked again or when evicted). */
    keptSize: () => kept.size,
  }
}
