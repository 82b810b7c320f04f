import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Granularity, Source } from '../time-range.ts'

/**
 * SQL fragments chosen from closed allow-lists. Rollup rows carry pre-summed
 * columns and a t-digest state; the raw table carries one row per request.
 * Both sides produce the same named columns so every query reads either.
 */
type Fragments = {
  time: 'bucket' | 'started_at'
  requests: string
  errors: string
  /** Requests whose model had no price (clickhouse/0007). */
  unpriced: string
  /** p50 and p95 from one t-digest merge (two merges cost twice as much). */
  latencyQuantiles: string
}

const ROLLUP: Fragments = {
  time: 'bucket',
  requests: 'sum(requests)',
  errors: 'sum(errors)',
  unpriced: 'sum(unpriced)',
  latencyQuantiles: 'quantilesTDigestMerge(0.5, 0.95)(latency)',
}
const RAW: Fragments = {
  time: 'started_at',
  requests: 'count()',
  errors: "countIf(status_code >= 400 OR error_class != '')",
  unpriced: 'countIf(price_unknown)',
  latencyQuantiles: 'quantilesTDigest(0.5, 0.95)(latency_ms)',
}

export function fragments(source: Source): Fragments {
  return source === 'requests' ? RAW : ROLLUP
}

/** The additive metrics plus distinct users, named as `Totals` reads them. */
export function metricsSelect(source: Source): string {
  const f = fragments(source)
  return [
    `${f.requests} AS m_requests`,
    `${f.errors} AS m_errors`,
    'sum(input_tokens) AS m_input',
    'sum(output_tokens) AS m_output',
    'sum(cached_read_tokens) AS m_cached',
    'sum(cache_write_tokens) AS m_cache_write',
    'sum(reasoning_tokens) AS m_reasoning',
    `${f.unpriced} AS m_unpriced`,
    // Decimal as text: exact to the nano-dollar, whatever the JSON settings.
    'toString(sum(cost_usd)) AS m_cost',
    'uniqExact(user_id) AS m_users',
  ].join(', ')
}

/**
 * Per-tag grouping without repeating every row once per tag: aggregate per
 * tag set first (sums, and mergeable states for distinct users and models),
 * un-nest the few distinct sets after. Same totals as un-nesting first, since
 * a tag occurs at most once per set. `keys` are extra inner group columns
 * (`expr AS alias`) the outer `select`/`groupBy` use by alias; `where` filters
 * the source rows, `tagCond` (on alias `tag`) the un-nested ones.
 */
export function tagSetSql(
  source: Source,
  o: { keys: string[]; where: string; tagCond: string; select: string; groupBy: string; models?: boolean },
): string {
  const f = fragments(source)
  const inner = [
    ...o.keys,
    'tags',
    `${f.requests} AS s_requests`,
    `${f.errors} AS s_errors`,
    'sum(input_tokens) AS s_input',
    'sum(output_tokens) AS s_output',
    'sum(cached_read_tokens) AS s_cached',
    'sum(cache_write_tokens) AS s_cache_write',
    'sum(reasoning_tokens) AS s_reasoning',
    `${f.unpriced} AS s_unpriced`,
    'sum(cost_usd) AS s_cost',
    'uniqExactState(user_id) AS s_users',
    ...(o.models ? ['groupUniqArrayState(100)(model) AS s_models'] : []),
  ]
  const innerGroup = [...o.keys.map((k) => k.split(' AS ').at(-1)!), 'tags']
  const metrics = [
    'sum(s_requests) AS m_requests',
    'sum(s_errors) AS m_errors',
    'sum(s_input) AS m_input',
    'sum(s_output) AS m_output',
    'sum(s_cached) AS m_cached',
    'sum(s_cache_write) AS m_cache_write',
    'sum(s_reasoning) AS m_reasoning',
    'sum(s_unpriced) AS m_unpriced',
    'toString(sum(s_cost)) AS m_cost',
    'uniqExactMerge(s_users) AS m_users',
    ...(o.models ? ['arraySort(groupUniqArrayMerge(100)(s_models)) AS models_used'] : []),
  ]
  return (
    `SELECT ${[o.select, ...metrics].join(', ')}` +
    ` FROM (SELECT ${inner.join(', ')} FROM ${source} WHERE ${o.where} GROUP BY ${innerGroup.join(', ')})` +
    ` LEFT ARRAY JOIN tags AS tag WHERE 1 = 1${o.tagCond} GROUP BY ${o.groupBy}`
  )
}

/** Series bucket start (unix seconds) in the caller's zone; `{tz:String}` must be in the params. */
export function bucketExpr(g: Granularity, source: Source): string {
  const t = `toDateTime(${fragments(source).time})`
  if (g === '5m') return `toUnixTimestamp(toStartOfFiveMinutes(${t}))`
  if (g === '1h') return `toUnixTimestamp(toStartOfHour(${t}, {tz:String}))`
  return `toUnixTimestamp(toStartOfDay(${t}, {tz:String}))`
}

export type GroupDim = 'user' | 'team' | 'key' | 'model' | 'provider' | 'project' | 'app' | 'tag'

/** Group-by column per dimension; `tag` is the ARRAY JOIN alias (see fromClause). */
export const GROUP_COLUMNS: Record<GroupDim, string> = {
  user: 'user_id',
  team: 'team_id',
  key: 'key_id',
  model: 'model',
  provider: 'provider',
  project: 'project',
  app: 'client_app',
  tag: 'tag',
}

/**
 * FROM clause. Per-tag grouping un-nests the tag set (LEFT so untagged
 * requests form the '' group); totals are never read from it.
 */
export function fromClause(source: Source, dim?: GroupDim): string {
  return dim === 'tag' ? `${source} LEFT ARRAY JOIN tags AS tag` : source
}

/** With a tag filter, a per-tag grouping shows only the tags asked for. */
export function tagGroupCondition(dim: GroupDim | undefined, tags: string[]): string {
  return dim === 'tag' && tags.length > 0 ? ' AND tag IN {f_tags:Array(String)}' : ''
}

export interface Totals {
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  /** A part of outputTokens (billed as output), shown on its own. */
  reasoningTokens: number
  /** Requests recorded at cost 0 because no price was known for their model. */
  unpricedRequests: number
  spendUsd: number
  activeUsers: number
}

/** Aliases never equal a column name, so no analyzer resolves a column to an aggregate. */
export type MetricRow = {
  m_requests: string | number
  m_errors: string | number
  m_input: string | number
  m_output: string | number
  m_cached: string | number
  m_cache_write: string | number
  m_reasoning: string | number
  m_unpriced: string | number
  m_cost: string
  m_users: string | number
}

export function readTotals(r: MetricRow | undefined): Totals {
  return {
    requests: Number(r?.m_requests ?? 0),
    errors: Number(r?.m_errors ?? 0),
    inputTokens: Number(r?.m_input ?? 0),
    outputTokens: Number(r?.m_output ?? 0),
    cachedTokens: Number(r?.m_cached ?? 0),
    cacheWriteTokens: Number(r?.m_cache_write ?? 0),
    reasoningTokens: Number(r?.m_reasoning ?? 0),
    unpricedRequests: Number(r?.m_unpriced ?? 0),
    spendUsd: Number(r?.m_cost ?? 0),
    activeUsers: Number(r?.m_users ?? 0),
  }
}

/**
 * Total tokens as the dashboards users know define it (seed 002): input plus
 * output. Cached reads and cache writes are reported beside it, never in it,
 * so "X in + Y out" always adds up to the total shown.
 */
export function totalTokens(t: Pick<Totals, 'inputTokens' | 'outputTokens'>): number {
  return t.inputTokens + t.outputTokens
}

export function emptyTotals(): Totals {
  return readTotals(undefined)
}

export interface GroupName {
  name: string
  email?: string
  teamId?: string
  teamName?: string
}

/** Display names live in the admin store (memory), joined here rather than in SQL. */
export function groupName(dim: GroupDim, id: string, store: AdminStore): GroupName {
  if (dim === 'user') {
    const u = store.user(id)
    return u
      ? { name: u.name, email: u.email, teamId: u.teamId, teamName: store.team(u.teamId)?.name }
      : { name: id || '(none)' }
  }
  if (dim === 'team') return { name: store.team(id)?.name ?? (id || '(none)') }
  if (dim === 'key') {
    const k = store.key(id)
    return k
      ? { name: k.name, teamId: k.teamId, teamName: store.team(k.teamId)?.name }
      : { name: id || '(none)' }
  }
  if (dim === 'tag') return { name: id || '(untagged)' }
  return { name: id || '(none)' }
}
