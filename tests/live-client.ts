import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'

/**
 * HTTP status of a WebSocket handshake (101 when upgraded), read from a raw
 * socket: Node's http client reports a refused upgrade as a hang-up.
 */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const u = new URL(url.replace(/^ws/, 'http'))
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname)
    const lines = [
      `GET ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ]
    socket.write(`${lines.join('\r\n')}\r\n\r\n`)
    let buf = ''
    socket.on('data', (d) => {
      buf += d.toString()
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf)
      if (m) {
        socket.destroy()
        resolve(Number(m[1]))
      }
    })
    socket.on('error', reject)
  })
}

/** Loose view of a server message, enough for assertions. */
export type LiveMessage = {
  type: string
  kpis: Record<string, number>
  series: { series: { id: string; points: Record<string, number>[] }[] }
  error: { code: string; message: string }
}

export interface LiveClient {
  ws: WebSocket
  messages: unknown[]
  /** Resolves with the first message (already received or future) that satisfies `pred`. */
  next<T = LiveMessage>(pred: (m: T) => boolean, timeoutMs?: number): Promise<T>
  closed: Promise<{ code: number; reason: string }>
  close(): void
}

/** Node's WebSocket (undici) accepts headers, so bearer keys and cookies work like in a server client. */
export function openLive(url: string, headers: Record<string, string> = {}): LiveClient {
  const ws = new WebSocket(url, { headers } as never)
  const messages: unknown[] = []
  const waiters = new Set<() => void>()
  ws.onmessage = (e) => {
    messages.push(JSON.parse(String(e.data)))
    for (const w of waiters) w()
  }
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason })
  })
  return {
    ws,
    messages,
    closed,
    next(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        let seen = 0
        const check = () => {
          for (; seen < messages.length; seen++) {
            const m = messages[seen] as never
            if (pred(m)) {
              waiters.delete(check)
              clearTimeout(timer)
              resolve(m)
              return
            }
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(
            new Error(
              `no matching live message within ${timeoutMs} ms; got ${JSON.stringify(messages.slice(-2))}`,
            ),
          )
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
    close: () => ws.close(),
  }
}
