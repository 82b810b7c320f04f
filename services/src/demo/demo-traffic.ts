import type { Logger } from 'pino'
/**
 * Live demo traffic: real HTTP requests through our own gateway, as a client
 * would send them (Bearer key, x-project, x-client-app, x-tags), so the
 * dashboard's live mode has something to show. Requests leave at random
 * (Poisson) moments averaging `rps` per second, mixing both APIs, streamed and
 * not, a few embeddings, an occasional simulated upstream error and prompt
 * cache hit. Prompts are random words: nothing real is ever sent.
 */
export interface DemoTrafficKey {
  plaintext: string
  apps?: string[]
  projects?: { name: string; tags: string[] }[]
}

export interface DemoTrafficOptions {
  /** Gateway origin, e.g. http://127.0.0.1:8787 (the /v1 routes are appended). */
  gatewayUrl: string
  keys: DemoTrafficKey[]
  /** Mean requests per second (default 2). */
  rps?: number
  /** Requests allowed in flight at once; beyond it a tick is skipped (default 16). */
  maxInFlight?: number
  /** Adds `x-fake-behavior` now and then (errors, cache hits, slow streams) for the simulated provider. */
  behaviors?: boolean
  random?: () => number
  logger: Logger
}

export interface DemoTrafficStats {
  sent: number
  ok: number
  failed: number
  skipped: number
  lastStatus: number
}

export interface DemoTraffic {
  stats(): DemoTrafficStats
  /** Sends one request now and resolves with its HTTP status (0 on a network error). */
  sendOne(): Promise<number>
  /** Stops scheduling and waits for requests in flight. */
  stop(): Promise<void>
}

const WORDS =
  'summarize classify translate explain refactor review draft outline compare list the a of for our new old quarterly release incident ticket invoice schema query dashboard latency budget'.split(
    ' ',
  )
const CHAT_MODELS = ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'o4-mini']
const CLAUDE_MODELS = ['claude-sonnet-4', 'claude-sonnet-4', 'claude-haiku-3.5', 'claude-opus-4']
const EMBEDDING_MODEL = 'text-embedding-3-small'

type Request = { path: string; body: Record<string, unknown>; stream: boolean }

export function startDemoTraffic(opts: DemoTrafficOptions): DemoTraffic {
  if (opts.keys.length === 0) throw new Error('demo traffic needs at least one key')
  const rps = opts.rps ?? 2
  const maxInFlight = opts.maxInFlight ?? 16
  const random = opts.random ?? Math.random
  const base = opts.gatewayUrl.replace(/\/+$/, '')
  const stats: DemoTrafficStats = { sent: 0, ok: 0, failed: 0, skipped: 0, lastStatus: 0 }
  const inFlight = new Set<Promise<number>>()
  const stopAll = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  let warned = false

  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  const words = (n: number) => Array.from({ length: n }, () => pick(WORDS)).join(' ')

  function buildRequest(): Request {
    const r = random()
    if (r < 0.08)
      return { path: '/v1/embeddings', body: { model: EMBEDDING_MODEL, input: words(20) }, stream: false }
    const stream = random() < 0.6
    const maxTokens = 16 + Math.floor(random() * 48)
    if (r < 0.5) {
      return {
        path: '/v1/messages',
        stream,
        body: {
          model: pick(CLAUDE_MODELS),
          max_tokens: maxTokens,
          system: `You help with ${words(3)}.`,
          messages: [{ role: 'user', content: words(8 + Math.floor(random() * 40)) }],
          ...(stream ? { stream: true } : {}),
        },
      }
    }
    return {
      path: '/v1/chat/completions',
      stream,
      body: {
        model: pick(CHAT_MODELS),
        max_tokens: maxTokens,
        messages: [
          { role: 'system', content: `You help with ${words(3)}.` },
          { role: 'user', content: words(8 + Math.floor(random() * 40)) },
        ],
        ...(stream
          ? { stream: true, ...(random() < 0.5 ? { stream_options: { include_usage: true } } : {}) }
          : {}),
      },
    }
  }

  function behavior(stream: boolean): string | undefined {
    if (opts.behaviors === false) return undefined
    const r = random()
    if (r < 0.01) return 'error-429'
    if (r < 0.015) return 'error-500'
    if (r < 0.3) return 'cache'
    if (stream && r < 0.35) return 'slow'
    return undefined
  }

  async function send(): Promise<number> {
    const key = pick(opts.keys)
    const req = buildRequest()
    const project = key.projects?.length ? pick(key.projects) : undefined
    const headers: Record<string, string> = {
      authorization: `Bearer ${key.plaintext}`,
      'content-type': 'application/json',
      'x-client-app': key.apps?.length ? pick(key.apps) : 'demo-traffic',
    }
    if (project) {
      headers['x-project'] = project.name
      if (project.tags.length) headers['x-tags'] = project.tags.join(',')
    }
    if (req.path === '/v1/messages') headers['anthropic-version'] = '2023-06-01'
    const fake = behavior(req.stream)
    if (fake) headers['x-fake-behavior'] = fake
    stats.sent++
    try {
      const res = await fetch(`${base}${req.path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(req.body),
        signal: AbortSignal.any([stopAll.signal, AbortSignal.timeout(60_000)]),
      })
      // Read the whole answer, streamed or not, like a real client would.
      await res.arrayBuffer()
      stats.lastStatus = res.status
      if (res.ok || fake?.startsWith('error-')) stats.ok++
      else fail({ status: res.status, path: req.path })
      return res.status
    } catch (err) {
      stats.lastStatus = 0
      if (!stopped) fail({ err: String(err), path: req.path })
      return 0
    }
  }

  function fail(detail: object) {
    stats.failed++
    // One warning is enough to notice a misconfigured demo; no log spam every second.
    if (!warned) {
      warned = true
      opts.logger.warn(detail, 'demo traffic request failed')
    }
  }

  function track(p: Promise<number>): Promise<number> {
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
    return p
  }

  function schedule() {
    if (stopped || rps <= 0) return
    // Exponential gaps: a Poisson process averaging `rps` requests per second.
    const gapMs = (-Math.log(1 - random()) / rps) * 1000
    timer = setTimeout(() => {
      if (inFlight.size < maxInFlight) track(send())
      else stats.skipped++
      schedule()
    }, gapMs)
  }
  schedule()

  return {
    stats: () => ({ ...stats }),
    sendOne: () => track(send()),
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      // Give requests in flight a moment to finish so their rows are complete, then cut them.
      const done = Promise.allSettled([...inFlight])
      const grace = new Promise((r) => setTimeout(r, 2_000).unref())
      await Promise.race([done, grace])
      stopAll.abort()
      await done
    },
  }
}
