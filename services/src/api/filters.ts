import type { ParsedFilter } from '@tokenmeter/contract'
import { HttpError } from '../core/errors/http-error.ts'
import type { AdminStore } from '../core/identity/admin-store.ts'
import type { Principal } from '../core/identity/auth.ts'
import { localMidnight, offsetMs } from '../core/time/time-zone.ts'
import { toClickHouseTime, type UsageRow } from '../core/usage/usage-row.ts'
import {
  type Granularity,
  MAX_RANGE_DAYS,
  type Preset,
  type RangeSpec,
  resolveRange,
  type TimeRange,
} from './time-range.ts'

// The filter schema itself is part of the contract (packages/contract); this module turns it into SQL.
export type { ParsedFilter }

export type ListDimension = 'keys' | 'tags' | 'teams' | 'users' | 'models' | 'providers' | 'projects' | 'apps'

export interface UsageFilter {
  range: TimeRange
  lists: Record<ListDimension, string[]>
  status?: 'ok' | 'error'
}

/**
 * Column behind each list filter (closed allow-list; tags are matched with
 * hasAny). A UsageRow is a row of `requests`, so the same name is the field
 * matchesRow reads in memory.
 */
const LIST_COLUMNS: Record<Exclude<ListDimension, 'tags'>, keyof UsageRow & string> = {
  keys: 'key_id',
  teams: 'team_id',
  users: 'user_id',
  models: 'model',
  providers: 'provider',
  projects: 'project',
  apps: 'client_app',
}
const listColumns = Object.entries(LIST_COLUMNS) as [
  Exclude<ListDimension, 'tags'>,
  keyof UsageRow & string,
][]

function bad(parameter: string, message: string): HttpError {
  return new HttpError(400, 'invalid_parameter', `Invalid parameter "${parameter}": ${message}.`, {
    parameter,
  })
}

/** An ISO string to UTC ms; without an offset the wall time is read in `tz`. */
export function parseInstant(s: string, tz: string): number {
  if (/(Z|[+-]\d\d:?\d\d)$/.test(s) && s.includes('T')) return Date.parse(s)
  const [date, time = '00:00:00'] = s.split('T')
  const [y, m, d] = date!.split('-').map(Number)
  const [hh = 0, mm = 0, ss = 0] = time.split(':').map(Number)
  const midnight = localMidnight(tz, y!, m!, d!)
  // Wall-clock offset within the day; exact except inside a DST jump.
  const guess = midnight + ((hh * 60 + mm) * 60 + ss) * 1000
  return guess - (offsetMs(tz, guess) - offsetMs(tz, midnight))
}

/**
 * Dates ClickHouse can hold in every table we query: rollups use DateTime
 * (1970 to 2106), so anything outside 1970-2099 is refused up front as a 400
 * instead of failing inside the query as a 500.
 */
const MIN_DATE_MS = 0
const MAX_DATE_MS = Date.UTC(2100, 0, 1)

/** A calendar-valid date and time (2025-02-30 or 24:00 are refused, not rolled over). */
function calendarValid(s: string): boolean {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d))?)?/.exec(s)
  if (!m) return false
  const [y, mo, d, hh = 0, mi = 0, ss = 0] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v)))
  const day = new Date(Date.UTC(y!, mo! - 1, d!))
  return (
    mo! >= 1 &&
    mo! <= 12 &&
    day.getUTCFullYear() === y &&
    day.getUTCDate() === d &&
    hh! < 24 &&
    mi! < 60 &&
    ss! < 60
  )
}

export function resolveFilter(
  p: ParsedFilter,
  nowMs = Date.now(),
  defaultPreset: Preset = '7d',
): UsageFilter {
  const tz = p.tz
  const given = [p.range && 'range', (p.from || p.to) && 'from/to', p.month && 'month'].filter(Boolean)
  if (given.length > 1) throw bad(String(given[1]).split('/')[0]!, `use only one of range, from/to, month`)
  let spec: RangeSpec
  if (p.month) {
    const [y, m] = p.month.split('-').map(Number)
    spec = { kind: 'month', year: y!, month: m! }
  } else if (p.from || p.to) {
    if (!p.from) throw bad('from', 'from is required when to is given')
    if (!calendarValid(p.from)) throw bad('from', `${p.from} is not a calendar date and time`)
    if (p.to && !calendarValid(p.to)) throw bad('to', `${p.to} is not a calendar date and time`)
    const fromMs = parseInstant(p.from, tz)
    const toMs = p.to ? parseInstant(p.to, tz) : nowMs
    if (!Number.isFinite(fromMs)) throw bad('from', 'not a valid date')
    if (!Number.isFinite(toMs)) throw bad('to', 'not a valid date')
    if (toMs <= fromMs) throw bad('to', 'must be after from')
    if (toMs - fromMs > MAX_RANGE_DAYS * 86_400_000)
      throw bad('from', `ranges span at most ${MAX_RANGE_DAYS} days`)
    spec = { kind: 'custom', fromMs, toMs }
  } else {
    spec = { kind: 'preset', preset: p.range ?? defaultPreset }
  }
  const range = resolveRange(spec, tz, nowMs, p.granularity as Granularity | undefined)
  if (range.fromMs < MIN_DATE_MS || range.toMs > MAX_DATE_MS) {
    throw bad(p.month ? 'month' : 'from', 'dates must fall between 1970-01-01 and 2099-12-31')
  }
  if (range.buckets.length > 2_000)
    throw bad('granularity', 'too many buckets for this range; use a coarser one')
  return {
    range,
    lists: {
      keys: p.keys ?? [],
      tags: p.tags ?? [],
      teams: p.teams ?? [],
      users: p.users ?? [],
      models: p.models ?? [],
      providers: p.providers ?? [],
      projects: p.projects ?? [],
      apps: p.apps ?? [],
    },
    status: p.status,
  }
}

// ---- Scope: who may see what. Applied to every query on the server. ----

export type Scope =
  | { kind: 'all' }
  | { kind: 'team'; teamId: string }
  | { kind: 'keys'; keyIds: string[]; userId: string; teamId: string }

export function scopeFor(p: Principal, store: AdminStore): Scope {
  if (p.role === 'admin') return { kind: 'all' }
  if (p.role === 'lead') return { kind: 'team', teamId: p.teamId }
  const keyIds = store
    .keys()
    .filter((k) => k.userId === p.userId)
    .map((k) => k.keyId)
    .sort()
  return { kind: 'keys', keyIds, userId: p.userId, teamId: p.teamId }
}

export function scopeKey(scope: Scope): string {
  if (scope.kind === 'all') return 'all'
  if (scope.kind === 'team') return `team:${scope.teamId}`
  return `keys:${scope.keyIds.join(',')}`
}

/** A filter naming a team, user or key outside the caller's scope is refused, not answered empty. */
export function assertInScope(
  scope: Scope,
  lists: Pick<UsageFilter['lists'], 'keys' | 'teams' | 'users'>,
  store: AdminStore,
) {
  const denial = outOfScope(scope, lists, store)
  if (denial) throw denial
}

/** The refusal assertInScope throws, or undefined when every named id is in scope. */
export function outOfScope(
  scope: Scope,
  lists: Partial<Pick<UsageFilter['lists'], 'keys' | 'teams' | 'users'>>,
  store: AdminStore,
): HttpError | undefined {
  if (scope.kind === 'all') return undefined
  const deny = (what: string, id: string) =>
    new HttpError(403, 'forbidden_filter', `The ${what} "${id}" is outside what you may see.`, {
      parameter: `${what}s`,
    })
  for (const t of lists.teams ?? []) if (t !== scope.teamId) return deny('team', t)
  for (const u of lists.users ?? []) {
    const ok = scope.kind === 'team' ? store.user(u)?.teamId === scope.teamId : u === scope.userId
    if (!ok) return deny('user', u)
  }
  for (const k of lists.keys ?? []) {
    const ok = scope.kind === 'team' ? store.key(k)?.teamId === scope.teamId : scope.keyIds.includes(k)
    if (!ok) return deny('key', k)
  }
  return undefined
}

// ---- SQL: values only as {name:Type} params, identifiers from the maps above. ----

export interface Clause {
  sql: string
  params: Record<string, unknown>
}

/** WHERE conditions for a filter and scope over a table whose time column is `timeCol`. */
export function whereClause(
  f: UsageFilter,
  scope: Scope,
  timeCol: 'bucket' | 'started_at',
  range: { fromMs: number; toMs: number } = f.range,
): Clause {
  const conds = [`${timeCol} >= {f_from:DateTime64(3, 'UTC')}`, `${timeCol} < {f_to:DateTime64(3, 'UTC')}`]
  const params: Record<string, unknown> = {
    f_from: toClickHouseTime(range.fromMs),
    f_to: toClickHouseTime(range.toMs),
  }
  for (const [dim, col] of listColumns) {
    const values = f.lists[dim]
    if (values.length === 0) continue
    conds.push(`${col} IN {f_${dim}:Array(String)}`)
    params[`f_${dim}`] = values
  }
  if (f.lists.tags.length > 0) {
    conds.push('hasAny(tags, {f_tags:Array(String)})')
    params.f_tags = f.lists.tags
  }
  if (f.status === 'ok') conds.push('status_code < 400')
  if (f.status === 'error') conds.push('status_code >= 400')
  if (scope.kind === 'team') {
    conds.push('team_id = {s_team:String}')
    params.s_team = scope.teamId
  } else if (scope.kind === 'keys') {
    conds.push('key_id IN {s_keys:Array(String)}')
    params.s_keys = scope.keyIds
  }
  return { sql: conds.join(' AND '), params }
}

/** The same predicate as whereClause, for rows seen in memory (live mode). Time is checked separately. */
export function matchesRow(f: UsageFilter, scope: Scope, row: UsageRow): boolean {
  if (scope.kind === 'team' && row.team_id !== scope.teamId) return false
  if (scope.kind === 'keys' && !scope.keyIds.includes(row.key_id)) return false
  for (const [dim, field] of listColumns) {
    const values = f.lists[dim]
    if (values.length > 0 && !values.includes(String(row[field]))) return false
  }
  if (f.lists.tags.length > 0 && !row.tags.some((t) => f.lists.tags.includes(t))) return false
  if (f.status === 'ok' && row.status_code >= 400) return false
  if (f.status === 'error' && row.status_code < 400) return false
  return true
}
