import type { LiveServerMessage } from '@tokenmeter/contract'

export type LiveStatus = 'off' | 'connecting' | 'live' | 'reconnecting' | 'error'

export type LiveSnapshot = Extract<LiveServerMessage, { type: 'snapshot' }>

/**
 * Live mode: one WebSocket to /api/live with the page's filters. Snapshots
 * replace what the page shows; a dropped socket reconnects with backoff; a
 * 4401 close (credential revoked) stops for good.
 */
export class LiveFeed {
  status = $state<LiveStatus>('off')
  lastUpdate = $state<number | null>(null)
  message = $state<string>('')
  #ws: WebSocket | undefined
  #query = ''
  #onSnapshot: (s: LiveSnapshot) => void
  #retry = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(onSnapshot: (s: LiveSnapshot) => void) {
    this.#onSnapshot = onSnapshot
  }

  start(query: string) {
    if (this.#ws && this.#query === query && this.status !== 'error') return
    this.stop()
    this.#query = query
    this.#retry = 0
    this.#open()
  }

  stop() {
    clearTimeout(this.#timer)
    const ws = this.#ws
    this.#ws = undefined
    if (ws) {
      ws.onclose = null
      ws.close(1000)
    }
    this.status = 'off'
    this.message = ''
  }

  #open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const ws = new WebSocket(`${proto}//${location.host}/api/live${this.#query ? `?${this.#query}` : ''}`)
    this.#ws = ws
    this.status = this.#retry === 0 ? 'connecting' : 'reconnecting'
    ws.onmessage = (ev) => {
      let msg: LiveServerMessage
      try {
        msg = JSON.parse(String(ev.data))
      } catch {
        return
      }
      if (msg.type === 'snapshot') {
        this.status = 'live'
        this.#retry = 0
        this.message = ''
        this.lastUpdate = Date.now()
        this.#onSnapshot(msg)
      } else if (msg.type === 'error') {
        this.message = msg.error.message || 'Live updates failed.'
      }
    }
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return
      this.#ws = undefined
      if (ev.code === 4401 || ev.code === 4403 || ev.code === 1008) {
        this.status = 'error'
        this.message = ev.reason || 'Live mode stopped: your credential is no longer valid.'
        return
      }
      this.status = 'reconnecting'
      const delay = Math.min(10_000, 500 * 2 ** this.#retry++)
      this.#timer = setTimeout(() => this.#open(), delay)
    }
  }
}
