/**
 * Identical queries share one answer. A live push makes every viewer of a
 * filter re-read its chart and table; they arrive spread over up to a second
 * (each page's own refresh limit), not only in the same milliseconds, so an
 * answer is shared while its query runs and then kept for `keepMs`, as long
 * as the data it read is unchanged: keys carry `dataVersion()`, which moves
 * whenever ClickHouse may answer differently (a write finished, rows heard
 * from another process), so a new row is never hidden behind a kept answer.
 * `keepMs` bounds what the clock alone changes (a sliding range's edges).
 * Failed queries are not kept. At most `maxEntries` answers, least recently
 * used dropped first. Callers put the caller's scope in the key: one scope's
 * answer never serves another.
 */
export interface InflightOptions {
  /** How long a finished answer is reused (0: only while running). */
  keepMs?: number
  maxEntries?: number
  dataVersion?: () => string | number
  now?: () => number
}

export function createInflight(opts: InflightOptions = {}) {
  const keepMs = opts.keepMs ?? 0
  const maxEntries = opts.maxEntries ?? 500
  const dataVersion = opts.dataVersion ?? (() => 0)
  const now = opts.now ?? Date.now
  // Map order is recency order: a hit is moved to the end, the first entry is the oldest.
  const answers = new Map<string, { p: Promise<unknown>; doneAt?: number }>()
  const fresh = (e: { doneAt?: number }) => e.doneAt === undefined || now() - e.doneAt < keepMs
  return {
    share<T>(key: string, run: () => Promise<T>): Promise<T> {
      const k = `${dataVersion()}|${key}`
      const existing = answers.get(k)
      if (existing && fresh(existing)) {
        answers.delete(k)
        answers.set(k, existing)
        return existing.p as Promise<T>
      }
      const entry: { p: Promise<T>; doneAt?: number } = { p: run() }
      answers.delete(k)
      answers.set(k, entry)
      entry.p.then(
        () => {
          if (keepMs <= 0 && answers.get(k) === entry) answers.delete(k)
          else entry.doneAt = now()
        },
        () => {
          if (answers.get(k) === entry) answers.delete(k)
        },
      )
      for (const [old, e] of answers) {
        if (answers.size <= maxEntries) break
        // A running query stays: dropping it would only start a duplicate.
        if (e.doneAt !== undefined) answers.delete(old)
      }
      return entry.p
    },
    /** Answers held (running or kept); expired ones go when their key is asked again or evicted. */
    size: () => answers.size,
  }
}
