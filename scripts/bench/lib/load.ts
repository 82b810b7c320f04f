import { Pool } from 'undici'

/** One kind of request against one target: where, with which headers and body. */
export interface Target {
  name: string
  origin: string
  path: string
  headers: Record<string, string>
  body: string
}

export interface LoadResult {
  target: string
  /** Latencies in ms of requests that completed with status 200, body fully read. */
  latencies: number[]
  ok: number
  errors: number
  /** Seconds the measurement window lasted. */
  seconds: number
  rps: number
}

/**
 * A keep-alive pool per target, pipelining off (one request per connection
 * at a time, as HTTP clients of an LLM API behave). The client reads every
 * response to its end, so a streamed answer counts when its last byte arrived.
 */
export function createClient(target: Target, connections: number) {
  const pool = new Pool(target.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  async function once(): Promise<boolean> {
    const res = await pool.request({
      method: 'POST',
      path: target.path,
      headers: { 'content-type': 'application/json', ...target.headers },
      body: target.body,
    })
    // Drain the whole body: for a stream, its last event.
    for await (const _ of res.body) {
    }
    return res.statusCode === 200
  }
  return { once, close: () => pool.close() }
}

/** Closed loop: `concurrency` callers, each sending its next request when the last one ended. */
export async function closedLoop(target: Target, concurrency: number, seconds: number): Promise<LoadResult> {
  const client = createClient(target, concurrency)
  const latencies: number[] = []
  let ok = 0
  let errors = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now()
        try {
          if (await client.once()) {
            ok++
            latencies.push(performance.now() - s)
          } else errors++
        } catch {
          errors++
        }
      }
    }),
  )
  const elapsed = (performance.now() - t0) / 1000
  await client.close()
  return { target: target.name, latencies, ok, errors, seconds: elapsed, rps: ok / elapsed }
}

/**
 * Open loop: requests start on a fixed schedule (`rate` per second) whatever
 * the answers do, and latency counts from the scheduled start, so a stalled
 * server shows up in the tail instead of slowing the schedule down.
 */
export async function openLoop(target: Target, rate: number, seconds: number, maxConnections = 512) {
  const client = createClient(target, maxConnections)
  const latencies: number[] = []
  let ok = 0
  let errors = 0
  let sent = 0
  const total = Math.round(rate * seconds)
  const t0 = performance.now()
  const inFlight = new Set<Promise<void>>()
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1)
    for (; sent < due; sent++) {
      const scheduled = t0 + (sent / rate) * 1000
      const p = client
        .once()
        .then(
          (good) => {
            if (good) {
              ok++
              latencies.push(performance.now() - scheduled)
            } else errors++
          },
          () => {
            errors++
          },
        )
        .finally(() => inFlight.delete(p))
      inFlight.add(p)
    }
    await new Promise((r) => setTimeout(r, 1))
  }
  await Promise.all(inFlight)
  const elapsed = (performance.now() - t0) / 1000
  await client.close()
  return { target: target.name, latencies, ok, errors, seconds: elapsed, rps: ok / elapsed }
}
