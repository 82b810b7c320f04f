import { ApiError } from './api'

/** While usage storage is down, a query quietly tries again this often, so charts come back by themselves. */
const OUTAGE_RETRY_MS = 5_000

/**
 * One piece of remote data with its loading and error state. Only the latest
 * run may land, so quick filter changes never show an older answer last.
 */
export class Query<T> {
  data = $state<T | undefined>(undefined)
  error = $state<ApiError | undefined>(undefined)
  loading = $state(false)
  #seq = 0

  async run(fn: () => Promise<T>, opts: { quiet?: boolean } = {}): Promise<void> {
    const seq = ++this.#seq
    if (!opts.quiet) this.loading = true
    try {
      const value = await fn()
      if (seq !== this.#seq) return
      this.data = value
      this.error = undefined
    } catch (e) {
      if (seq !== this.#seq) return
      this.error = e instanceof ApiError ? e : new ApiError(0, 'client', String(e))
      if (this.error.code === 'storage_unavailable') {
        setTimeout(() => {
          if (seq === this.#seq) void this.run(fn, { quiet: true })
        }, OUTAGE_RETRY_MS)
      }
    } finally {
      if (seq === this.#seq) this.loading = false
    }
  }
}
