import { costNanos, type TokenCounts } from '../core/pricing/pricing.ts'
import type { UsageRow } from '../core/usage/usage-row.ts'
import { type AliasTable, createAliasTable, createRng, createTableNormal, hash32, type Rng } from './prng.ts'
import type { Catalogue, CatalogueModel } from './usage-catalogue.ts'

/**
 * Realistic synthetic usage rows, in time order, in batches.
 *
 * Deterministic: the same catalogue, seed, range and row count give the same
 * rows byte for byte. Each hour of the range draws from its own PRNG seeded by
 * (seed, hour), so workers can each take a `slice` of the hours and together
 * produce exactly the rows of one run.
 *
 * Shape of the traffic: exactly `rows` rows spread over the range by an
 * hourly weight (a daily cycle with an EU morning bump and a US afternoon
 * peak, quiet weekends, a growth trend, hourly noise); keys picked Zipf-like;
 * each key's usual client app and project; models by client app; a baseline
 * error rate plus rare hour-long provider incidents.
 *
 * Built for speed (well over a million rows per second on one core): O(1)
 * alias-table draws, cached date prefixes, lookup-table hex, no per-row
 * allocation besides the row and its strings.
 */
export interface GenerateOptions {
  catalogue: Catalogue
  seed: number
  /** Range in epoch ms, [from, to). */
  from: number
  to: number
  rows: number
  batchSize?: number
  /** Baseline share of failed requests (incidents come on top). */
  errorRate?: number
  /** batch_id written into each row of batch i (the insert's dedup token, typically). */
  batchId?: (index: number) => string
  /** Relative growth of traffic from the start to the end of the range. */
  growth?: number
  /**
   * Only the hours starting in [from, to) of the whole range's plan, for
   * parallel generation; batch indexes then start at 0 in each slice.
   */
  slice?: { from: number; to: number }
}

export interface GeneratedBatch {
  index: number
  rows: UsageRow[]
}

const HOUR = 3_600_000

/** Relative traffic in the hour starting at `ms` (UTC): daily and weekly cycles. */
export function hourWeight(ms: number): number {
  const h = new Date(ms).getUTCHours() + 0.5
  const dow = new Date(ms).getUTCDay()
  const daily = 0.08 + Math.exp(-((h - 15.5) ** 2) / (2 * 3.2 ** 2)) + 0.55 * Math.exp(-((h - 9) ** 2) / 8)
  const weekly = dow === 6 ? 0.28 : dow === 0 ? 0.22 : dow === 5 ? 0.85 : 1
  return daily * weekly
}

export interface HourSlot {
  start: number
  end: number
  rows: number
}

/** Exactly `rows` rows over the hours of [from, to), by cumulative rounding of the weights. */
export function planHours(
  opts: Pick<GenerateOptions, 'seed' | 'from' | 'to' | 'rows' | 'growth'>,
): HourSlot[] {
  const { from, to, rows } = opts
  if (!(to > from)) throw new Error('generator range must have to > from')
  if (!Number.isInteger(rows) || rows < 0) throw new Error('rows must be a non-negative integer')
  const growth = opts.growth ?? 0.6
  const slots: HourSlot[] = []
  const weights: number[] = []
  for (let start = Math.floor(from / HOUR) * HOUR; start < to; start += HOUR) {
    const s = Math.max(start, from)
    const e = Math.min(start + HOUR, to)
    const progress = (s - from) / (to - from)
    const noise = 0.8 + 0.4 * createRng(hash32('hour-noise', opts.seed, start))()
    weights.push(hourWeight(start) * ((e - s) / HOUR) * (1 + growth * progress) * noise)
    slots.push({ start: s, end: e, rows: 0 })
  }
  const total = weights.reduce((a, b) => a + b, 0)
  let cum = 0
  let assigned = 0
  slots.forEach((slot, i) => {
    cum += weights[i] as number
    const upTo = i === slots.length - 1 ? rows : Math.round((rows * cum) / total)
    slot.rows = upTo - assigned
    assigned = upTo
  })
  return slots
}

// Lookup tables (about 3 MB, built once) so a timestamp or a UUID is two or
// three string joins instead of a dozen. Accesses walk them nearly in order
// (rows come sorted by time, ids count up), which keeps them cache-friendly.
const pad = (n: number, w: number) => String(n).padStart(w, '0')
const HH_MM = Array.from({ length: 1440 }, (_, i) => `${pad(Math.floor(i / 60), 2)}:${pad(i % 60, 2)}:`)
// Small tables stay in cache; a 60,000-entry "ss.mmm" table was slower (cache misses).
const SS = Array.from({ length: 60 }, (_, i) => `${pad(i, 2)}.`)
const MMM = Array.from({ length: 1000 }, (_, i) => pad(i, 3))
const HEX4 = Array.from({ length: 65_536 }, (_, i) => i.toString(16).padStart(4, '0'))
const DAY = 86_400_000

/** 'YYYY-MM-DD hh:mm:ss.sss' UTC; the date part is cached (rows come in time order). */
function createTimeFormatter() {
  let day = Number.NaN
  let prefix = ''
  return (ms: number): string => {
    const d = Math.floor(ms / DAY)
    if (d !== day) {
      day = d
      prefix = `${new Date(d * DAY).toISOString().slice(0, 10)} `
    }
    const inDay = ms - d * DAY
    const minute = (inDay / 60_000) | 0
    const inMinute = inDay - minute * 60_000
    const second = (inMinute / 1000) | 0
    return prefix + HH_MM[minute] + SS[second] + MMM[inMinute - second * 1000]
  }
}

/** Same digits as pricing.nanosToUsdString, without BigInt (exact below 2^53 nano-USD). */
export function fastUsdString(nanos: number): string {
  const whole = Math.floor(nanos / 1e9)
  let frac = nanos - whole * 1e9
  const hi = Math.floor(frac / 1e6)
  frac -= hi * 1e6
  const mid = Math.floor(frac / 1e3)
  return `${whole}.${MMM[hi]}${MMM[mid]}${MMM[frac - mid * 1e3]}`
}

/**
 * Request ids for one hour: 80 random bits drawn per hour, then the row's
 * index in the hour. Version 4 and the RFC 4122 variant bits are set, so every
 * validator accepts them; ids stay unique across hours with overwhelming odds.
 */
function createIdMaker(rng: Rng): (i: number) => string {
  const a = (rng() * 4294967296) >>> 0
  const b = (rng() * 4294967296) >>> 0
  const c = (rng() * 4294967296) >>> 0
  const prefix = `${HEX4[a >>> 16]}${HEX4[a & 0xffff]}-${HEX4[b >>> 16]}-${HEX4[(b & 0x0fff) | 0x4000]}-${HEX4[((c >>> 16) & 0x3fff) | 0x8000]}-${HEX4[c & 0xffff]}`
  return (i) => prefix + HEX4[(i >>> 16) & 0xffff] + HEX4[i & 0xffff]
}

// Classes as the gateway records them (gateway.routes.ts).
interface ErrorKind {
  status: number
  errorClass: string
}
const ERRORS: { kind: ErrorKind; weight: number }[] = [
  { kind: { status: 429, errorClass: 'rate_limited' }, weight: 40 },
  { kind: { status: 500, errorClass: 'upstream_5xx' }, weight: 20 },
  { kind: { status: 503, errorClass: 'upstream_5xx' }, weight: 15 },
  { kind: { status: 400, errorClass: 'upstream_4xx' }, weight: 15 },
  { kind: { status: 504, errorClass: 'upstream_timeout' }, weight: 5 },
  { kind: { status: 499, errorClass: 'client_disconnected' }, weight: 5 },
]
const INCIDENT_ERRORS: ErrorKind[] = [
  { status: 503, errorClass: 'upstream_5xx' },
  { status: 500, errorClass: 'upstream_5xx' },
  { status: 504, errorClass: 'upstream_timeout' },
]

const ENDPOINT: Record<CatalogueModel['api'], string> = {
  openai: '/v1/chat/completions',
  anthropic: '/v1/messages',
  embeddings: '/v1/embeddings',
}

/** Pre-digested catalogue: alias tables per choice so a row costs a few table lookups. */
function prepare(catalogue: Catalogue) {
  if (catalogue.keys.length === 0) throw new Error('catalogue has no keys')
  const keyPick = createAliasTable(catalogue.keys.map((k) => k.weight))
  const appModelPick: AliasTable[] = catalogue.apps.map((a) =>
    createAliasTable(a.models.map((m) => m.weight)),
  )
  const errorPick = createAliasTable(ERRORS.map((e) => e.weight))
  return { keyPick, appModelPick, errorPick }
}

export function* generateUsageBatches(opts: GenerateOptions): Generator<GeneratedBatch> {
  const { catalogue, seed } = opts
  // Small batches die young in the GC nursery; 50k-row batches of objects get
  // promoted and halve throughput. Consumers join batches for big inserts.
  const batchSize = opts.batchSize ?? 5_000
  const baseErrorRate = opts.errorRate ?? 0.015
  const { keyPick, appModelPick, errorPick } = prepare(catalogue)
  const { keys, apps, models, projects } = catalogue
  const vendors = [...new Set(models.map((m) => (m.api === 'anthropic' ? 'anthropic' : 'openai')))]
  const fmtStart = createTimeFormatter()
  const fmtEnd = createTimeFormatter()
  const tokens: TokenCounts = { input: 0, output: 0, cachedRead: 0, cacheWrite: 0 }
  let batch: UsageRow[] = []
  let index = 0
  let batchId = opts.batchId?.(0) ?? ''

  for (const slot of planHours(opts)) {
    if (slot.rows === 0) continue
    if (opts.slice && (slot.start < opts.slice.from || slot.start >= opts.slice.to)) continue
    const rng = createRng(hash32('hour', seed, slot.start))
    const normal = createTableNormal(rng)
    const requestId = createIdMaker(rng)
    // About one hour in a hundred, one vendor's models fail a lot (a provider incident).
    const incident = rng() < 0.01 ? vendors[Math.floor(rng() * vendors.length)] : undefined
    const span = slot.end - slot.start
    const times = new Float64Array(slot.rows)
    for (let i = 0; i < slot.rows; i++) times[i] = slot.start + Math.floor(rng() * span)
    times.sort()

    for (let i = 0; i < slot.rows; i++) {
      const startedAt = times[i] as number
      const key = keys[keyPick.pick(rng())] as Catalogue['keys'][number]
      const appIndex = key.apps.length > 1 && rng() < 0.2 ? (key.apps[1] as number) : (key.apps[0] as number)
      const app = apps[appIndex] as Catalogue['apps'][number]
      const modelIndex = (app.models[(appModelPick[appIndex] as AliasTable).pick(rng())] as { model: number })
        .model
      const model = models[modelIndex] as CatalogueModel
      const projectIndex =
        key.projects.length > 1 && rng() < 0.15
          ? (key.projects[1 + Math.floor(rng() * (key.projects.length - 1))] as number)
          : (key.projects[0] as number)
      const project = projects[projectIndex] as Catalogue['projects'][number]
      const tags = project.tagSets[rng() < 0.75 ? 0 : rng() < 0.7 ? 1 : 2] as string[]
      const embeddings = model.api === 'embeddings'
      const streamed = !embeddings && rng() < app.streamRate

      let status = 200
      let errorClass = ''
      const errorRate =
        incident !== undefined && incident === (model.api === 'anthropic' ? 'anthropic' : 'openai')
          ? 0.25
          : baseErrorRate
      if (rng() < errorRate) {
        const kind =
          errorRate > baseErrorRate
            ? (INCIDENT_ERRORS[Math.floor(rng() * INCIDENT_ERRORS.length)] as ErrorKind)
            : (ERRORS[errorPick.pick(rng())] as { kind: ErrorKind }).kind
        status = kind.status
        errorClass = kind.errorClass
        if (errorClass === 'client_disconnected' && !streamed) {
          status = 400
          errorClass = 'upstream_4xx'
        }
      }

      let promptTokens = Math.max(1, Math.round(model.inputMedian * Math.exp(0.9 * normal())))
      if (promptTokens > 200_000) promptTokens = 200_000
      let output = embeddings ? 0 : Math.round(model.outputMedian * Math.exp(0.8 * normal()))
      if (output > 16_000) output = 16_000
      let cachedRead = 0
      let cacheWrite = 0
      if (rng() < model.cacheHitRate) cachedRead = Math.round(promptTokens * (0.5 + 0.45 * rng()))
      else if (model.api === 'anthropic' && rng() < 0.2) cacheWrite = Math.round(promptTokens * 0.6)
      let input = promptTokens - cachedRead - cacheWrite

      const ttftBase = model.ttftMedianMs * Math.exp(0.5 * normal())
      let latency = embeddings
        ? ttftBase + promptTokens / 200
        : ttftBase + output * model.msPerOutputToken * (0.8 + 0.4 * rng()) + 15
      let ttft = streamed ? Math.round(ttftBase) : 0
      if (status !== 200) {
        if (errorClass === 'client_disconnected') {
          // Tokens seen before the client went away are still billed.
          output = Math.floor(output * rng())
          latency = ttftBase + output * model.msPerOutputToken
        } else {
          // Failed upstream calls are not billed and fail fast (timeouts excepted).
          input = 0
          output = 0
          cachedRead = 0
          cacheWrite = 0
          ttft = 0
          latency = errorClass === 'upstream_timeout' ? 120_000 : 20 + rng() * 400
        }
      }
      const latencyMs = Math.round(latency)
      if (ttft > latencyMs) ttft = latencyMs
      // Streams whose client did not ask for usage, counted by the heuristic.
      const estimated = streamed && model.api === 'openai' && status === 200 && rng() < 0.02

      tokens.input = input
      tokens.output = output
      tokens.cachedRead = cachedRead
      tokens.cacheWrite = cacheWrite
      const nanos = costNanos(tokens, model.facade)

      batch.push({
        request_id: requestId(i),
        started_at: fmtStart(startedAt),
        ended_at: fmtEnd(startedAt + latencyMs),
        key_id: key.keyId,
        key_prefix: key.keyPrefix,
        user_id: key.userId,
        team_id: key.teamId,
        project: project.name,
        client_app: app.name,
        tags,
        provider: model.facade.provider,
        model: model.facade.model,
        upstream_model: model.facade.upstreamModel,
        endpoint: ENDPOINT[model.api],
        streamed,
        status_code: status,
        error_class: errorClass,
        input_tokens: input,
        output_tokens: output,
        cached_read_tokens: cachedRead,
        cache_write_tokens: cacheWrite,
        reasoning_tokens: Math.floor(output * (model.reasoningShare ?? 0)),
        tokens_estimated: estimated,
        cost_usd: fastUsdString(nanos),
        latency_ms: latencyMs,
        ttft_ms: ttft,
        batch_id: batchId,
      })
      if (batch.length >= batchSize) {
        yield { index, rows: batch }
        batch = []
        index++
        batchId = opts.batchId?.(index) ?? ''
      }
    }
  }
  if (batch.length > 0) yield { index, rows: batch }
}

/** All rows at once; for tests and small ranges. */
export function generateUsage(opts: Omit<GenerateOptions, 'batchSize'>): UsageRow[] {
  const out: UsageRow[] = []
  for (const b of generateUsageBatches({ ...opts, batchSize: 100_000 })) for (const r of b.rows) out.push(r)
  return out
}
