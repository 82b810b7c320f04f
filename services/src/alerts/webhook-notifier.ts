import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import type { Alert } from './alert.ts'

export const SIGNATURE_HEADER = 'x-tokenmeter-signature'
export const ALERT_ID_HEADER = 'x-tokenmeter-alert-id'

/**
 * Stripe-style signature over `${timestamp}.${body}`: the timestamp inside the
 * signed material lets receivers reject replays of an old delivery.
 * Header value: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
 */
export function signPayload(secret: string, body: string, timestamp: number): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')
  return `t=${timestamp},v1=${mac}`
}

/** How far a delivery's timestamp may be from the receiver's clock (replay window). */
export const SIGNATURE_TOLERANCE_S = 300

/**
 * For receivers: true when `header` carries a v1 HMAC of `${t}.${body}` under
 * `secret` and `t` is within `toleranceS` of now. The MAC is compared in
 * constant time; an old (replayed) delivery fails even with a good MAC.
 * `body` must be the raw request body, byte for byte, before any JSON parsing.
 */
export function verifySignature(
  secret: string,
  body: string,
  header: string,
  { toleranceS = SIGNATURE_TOLERANCE_S, nowS = Math.floor(Date.now() / 1000) } = {},
): boolean {
  const parts = new Map<string, string[]>()
  for (const item of header.split(',')) {
    const [k, v] = item.trim().split('=', 2)
    if (k && v) parts.set(k, [...(parts.get(k) ?? []), v])
  }
  const t = parts.get('t')?.[0]
  if (!t || !/^\d+$/.test(t) || Math.abs(nowS - Number(t)) > toleranceS) return false
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'))
  // Several v1 values are allowed (secret rotation); any one matching is enough.
  return (parts.get('v1') ?? []).some((v) => {
    const given = Buffer.from(v)
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}

export interface WebhookNotifier {
  /** Posts the alert to every URL not yet holding it; true when all have it. */
  deliver(alert: Alert): Promise<boolean>
}

export interface WebhookNotifierOptions {
  urls: string[]
  secret: string
  /** Attempts per URL and delivery; waits baseDelayMs, 2x, 4x... in between. */
  attempts?: number
  baseDelayMs?: number
  timeoutMs?: number
  fetch?: typeof fetch
  log: Logger
}

export function parseWebhookUrls(list: string): string[] {
  return list
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
}

export function createWebhookNotifier(opts: WebhookNotifierOptions): WebhookNotifier {
  const doFetch = opts.fetch ?? fetch
  const attempts = opts.attempts ?? 5
  const base = opts.baseDelayMs ?? 1_000
  // (alert, url) pairs already delivered by this process: a retry of a
  // partly failed delivery only goes to the URLs that missed it.
  const delivered = new Set<string>()
  const inFlight = new Map<string, Promise<boolean>>()

  async function post(url: string, alert: Alert): Promise<boolean> {
    const body = JSON.stringify({ type: 'tokenmeter.alert', alert })
    let lastError = ''
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, base * 2 ** (attempt - 1)))
      try {
        const res = await doFetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'tokenmeter-alerts',
            [ALERT_ID_HEADER]: alert.alertId,
            ...(opts.secret
              ? { [SIGNATURE_HEADER]: signPayload(opts.secret, body, Math.floor(Date.now() / 1000)) }
              : {}),
          },
          body,
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        })
        // The answer's body is not needed; failing to discard it changes nothing for the delivery.
        await res.body?.cancel().catch((err) => {
          lastError = `discarding the answer: ${(err as Error).message}`
        })
        if (res.ok) return true
        lastError = `HTTP ${res.status}`
        // A 4xx other than 408/429 will not get better by retrying.
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break
      } catch (err) {
        // network error or timeout: retry; the last cause goes into the warning below
        lastError = (err as Error).message
      }
    }
    // The URL is configuration, not a secret, but may carry a token in its query: log the origin only.
    opts.log.warn(
      { alertId: alert.alertId, origin: new URL(url).origin, attempts, lastError },
      'alert webhook delivery failed',
    )
    return false
  }

  return {
    deliver(alert) {
      let p = inFlight.get(alert.alertId)
      if (!p) {
        p = (async () => {
          const results = await Promise.all(
            opts.urls.map(async (url) => {
              const k = `${alert.alertId} ${url}`
              if (delivered.has(k)) return true
              const ok = await post(url, alert)
              if (ok) delivered.add(k)
              return ok
            }),
          )
          return results.every(Boolean)
        })().finally(() => inFlight.delete(alert.alertId))
        inFlight.set(alert.alertId, p)
      }
      return p
    },
  }
}
