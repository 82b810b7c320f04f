import { WebSocket } from 'undici'

/**
 * One person on the Usage page (web/src/routes/usage/+page.svelte) with live
 * mode on, making the HTTP requests and the WebSocket subscription that page
 * makes, without a browser, so that 100 of them fit beside the server on two
 * cores. Keep it in step with the page:
 * - on load: /api/filters, /api/kpis, /api/series (split by the view),
 *   /api/breakdown (by the view, 50 rows), then GET /api/live with the filter;
 * - then: a pushed snapshot replaces the cards; when its numbers differ from
 *   the ones shown, the chart and the table are re-requested, at most once a
 *   second (a trailing timer, as the page's refreshRest).
 */
export type View = 'user' | 'team' | 'project' | 'app'

export interface ViewerOptions {
  origin: string
  key: string
  /** The page's filter parameters (range, models, tags...), as in its URL. */
  filter: Record<string, string>
  view: View
}

export interface Viewer {
  /** HTTP requests this viewer made after its page load (refreshes). */
  readonly refreshRequests: number
  /** Requests refused with 503 (the API sheds dashboard queries while its event loop lags). */
  readonly shedRequests: number
  /** Requests answered with any other error: a broken setup, never expected. */
  readonly failedRequests: number
  /** Requests that got no whole answer (connection refused or reset, body cut off, not JSON). */
  readonly networkErrors: number
  /** What the last of those said, for the bench's report. */
  readonly lastNetworkError: string | undefined
  /** Requests sent and not yet answered. */
  readonly inflight: number
  /** Milliseconds each refresh request took, request to full answer. */
  readonly latencies: readonly number[]
  /** Snapshots received over the socket. */
  readonly snapshots: number
  /** Paused, pushes still arrive but request nothing (so a measurement can wait for its backlog). */
  pause(): void
  resume(): void
  /** Resolves once the page load's requests are answered and the first snapshot arrived. */
  ready: Promise<void>
  close(): void
}

interface Kpis {
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  spendUsd: number
  activeUsers: number
}

/** What the page compares to decide that a push changed what it shows. */
const shownOf = (k: Kpis) =>
  JSON.stringify([
    k.requests,
    k.errors,
    k.inputTokens,
    k.outputTokens,
    k.cachedTokens,
    k.cacheWriteTokens,
    k.spendUsd,
    k.activeUsers,
  ])

export function openViewer(o: ViewerOptions): Viewer {
  const headers = { authorization: `Bearer ${o.key}` }
  const filterQs = String(new URLSearchParams({ ...o.filter, tz: 'UTC' }))
  const seriesQs = `${filterQs}&split=${o.view === 'user' ? 'none' : o.view}`
  const tableQs = `${filterQs}&by=${o.view}&sort=cost&order=desc&limit=50&offset=0`
  let refreshRequests = 0
  let failedRequests = 0
  let shedRequests = 0
  let networkErrors = 0
  let lastNetworkError: string | undefined
  let inflight = 0
  const latencies: number[] = []
  let paused = false
  let snapshots = 0
  let shown: string | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let lastRefresh = 0
  let closed = false

  const request = async <T>(path: string, qs: string): Promise<T | undefined> => {
    inflight++
    try {
      const res = await fetch(`${o.origin}${path}?${qs}`, { headers })
      const body = await res.text()
      if (res.status === 200) return JSON.parse(body) as T
      if (res.status === 503) shedRequests++
      else failedRequests++
    } catch (err) {
      // Counted, not thrown: one viewer's lost answer must not end the run; the bench reports it.
      networkErrors++
      lastNetworkError = `${path}: ${(err as Error).message}`
    } finally {
      inflight--
    }
    return undefined
  }
  const timed = (path: string, qs: string) => {
    const t0 = performance.now()
    void request(path, qs).then(() => latencies.push(performance.now() - t0))
  }
  const refresh = () => {
    if (closed || paused) return
    refreshRequests += 2
    timed('/api/series', seriesQs)
    timed('/api/breakdown', tableQs)
  }
  // The page's refreshRest: one trailing refresh at most every second.
  const refreshSoon = () => {
    if (timer) return
    const wait = Math.max(0, 1000 - (Date.now() - lastRefresh))
    timer = setTimeout(() => {
      timer = undefined
      lastRefresh = Date.now()
      refresh()
    }, wait)
  }

  let ws: WebSocket | undefined
  const ready = (async () => {
    const [, kpis] = await Promise.all([
      request('/api/filters', ''),
      request<Kpis>('/api/kpis', filterQs),
      request('/api/series', seriesQs),
      request('/api/breakdown', tableQs),
    ])
    if (kpis) shown = shownOf(kpis)
    const socket = new WebSocket(`${o.origin.replace('http', 'ws')}/api/live?${filterQs}`, {
      headers,
    } as never)
    ws = socket
    await new Promise<void>((resolve, reject) => {
      socket.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data)) as { type: string; kpis?: Kpis }
        if (msg.type !== 'snapshot' || !msg.kpis) return
        snapshots++
        resolve()
        const now = shownOf(msg.kpis)
        const changed = now !== shown
        shown = now
        if (changed) refreshSoon()
      }
      socket.onerror = () => reject(new Error('live socket failed'))
      socket.onclose = (ev) => {
        if (!closed) reject(new Error(`live socket closed: ${ev.code} ${ev.reason}`))
      }
    })
  })()

  return {
    get refreshRequests() {
      return refreshRequests
    },
    get failedRequests() {
      return failedRequests
    },
    get shedRequests() {
      return shedRequests
    },
    get networkErrors() {
      return networkErrors
    },
    get lastNetworkError() {
      return lastNetworkError
    },
    get inflight() {
      return inflight
    },
    latencies,
    get snapshots() {
      return snapshots
    },
    pause() {
      paused = true
      clearTimeout(timer)
      timer = undefined
    },
    resume() {
      paused = false
    },
    ready,
    close() {
      closed = true
      clearTimeout(timer)
      ws?.close()
    },
  }
}
