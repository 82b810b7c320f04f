/**
 * Identical queries in flight at the same time run once: when a live push
 * makes every viewer of the same filter re-read its chart and table, they
 * arrive within milliseconds of each other and share one ClickHouse query.
 * Nothing is cached past the query's own lifetime, so no answer is stale.
 */
export function createInflight() {
  const running = new Map<string, Promise<unknown>>()
  return {
    share<T>(key: string, run: () => Promise<T>): Promise<T> {
      const existing = running.get(key)
      if (existing) return existing as Promise<T>
      const p = run().finally(() => running.delete(key))
      running.set(key, p)
      return p
    },
    size: () => running.size,
  }
}
