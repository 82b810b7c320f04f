import { randomUUID } from 'node:crypto'
import type { Core } from '../services/src/bootstrap.ts'
import type { ApiKey, User } from '../services/src/core/identity/entities.ts'
import { toClickHouseTime, type UsageRow } from '../services/src/core/usage/usage-row.ts'

/** Small deterministic PRNG so a failing property run can be replayed from its seed. */
export function rng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!
  const subset = <T>(xs: readonly T[], max: number): T[] => {
    const n = int(1, Math.min(max, xs.length))
    return [...xs].sort(() => next() - 0.5).slice(0, n)
  }
  return { next, int, pick, subset }
}

export const MODELS = [
  { model: 'gpt-4o', provider: 'openai' },
  { model: 'gpt-4o-mini', provider: 'openai' },
  { model: 'claude-sonnet', provider: 'anthropic' },
  { model: 'sim-1', provider: 'simulated' },
] as const
export const TAGS = ['alpha', 'beta', 'prod', 'dev', 'batch']
export const PROJECTS = ['web', 'api', 'etl', '']
export const APPS = ['cursor', 'claude-code', 'sdk', '']

export interface Org {
  teams: string[]
  users: User[]
  keys: ApiKey[]
  plaintext: Map<string, string>
  admin: User
  leads: Map<string, User>
}

/** Three teams, each with a lead and two members with a key or two each, plus an admin. */
export async function seedOrg(core: Core): Promise<Org> {
  const s = core.store
  const teams = ['team_a', 'team_b', 'team_c']
  for (const t of teams) await s.upsertTeam({ teamId: t, name: `Team ${t.slice(5).toUpperCase()}` })
  const users: User[] = []
  const leads = new Map<string, User>()
  const admin = await s.upsertUser({
    userId: 'u_admin',
    email: 'admin@x.io',
    name: 'Ada Admin',
    teamId: 'team_a',
    role: 'admin',
  })
  users.push(admin)
  for (const t of teams) {
    const lead = await s.upsertUser({
      userId: `u_${t}_lead`,
      email: `lead@${t}.io`,
      name: `Lead ${t}`,
      teamId: t,
      role: 'lead',
    })
    leads.set(t, lead)
    users.push(lead)
    for (const n of [1, 2]) {
      users.push(
        await s.upsertUser({
          userId: `u_${t}_m${n}`,
          email: `m${n}@${t}.io`,
          name: `Member ${n} ${t}`,
          teamId: t,
          role: 'member',
        }),
      )
    }
  }
  const keys: ApiKey[] = []
  const plaintext = new Map<string, string>()
  for (const u of users) {
    for (let i = 0; i < (u.role === 'member' ? 2 : 1); i++) {
      const { key, plaintext: p } = await s.createKey({ userId: u.userId, name: `${u.name} key ${i + 1}` })
      keys.push(key)
      plaintext.set(key.keyId, p)
    }
  }
  return { teams, users, keys, plaintext, admin, leads }
}

export function makeRow(
  key: ApiKey,
  startedMs: number,
  r: ReturnType<typeof rng>,
  over: Partial<UsageRow> = {},
): UsageRow {
  const m = r.pick(MODELS)
  const status = r.next() < 0.85 ? 200 : r.pick([400, 429, 500])
  const tags = r.next() < 0.25 ? [] : [...new Set(r.subset(TAGS, 3))].sort()
  const latency = r.int(20, 4000)
  return {
    request_id: randomUUID(),
    started_at: toClickHouseTime(startedMs),
    ended_at: toClickHouseTime(startedMs + latency),
    key_id: key.keyId,
    key_prefix: key.keyPrefix,
    user_id: key.userId,
    team_id: key.teamId,
    project: r.pick(PROJECTS),
    client_app: r.pick(APPS),
    tags,
    provider: m.provider,
    model: m.model,
    upstream_model: m.model,
    endpoint: '/v1/chat/completions',
    streamed: r.next() < 0.5,
    status_code: status,
    error_class:
      status === 200 && r.next() < 0.05 ? 'stream_aborted' : status === 200 ? '' : 'upstream_error',
    input_tokens: r.int(0, 5000),
    output_tokens: r.int(0, 2000),
    cached_read_tokens: r.next() < 0.3 ? r.int(0, 3000) : 0,
    cache_write_tokens: r.next() < 0.1 ? r.int(0, 1000) : 0,
    tokens_estimated: r.next() < 0.1,
    cost_usd: `0.${String(r.int(0, 999_999_999)).padStart(9, '0')}`,
    latency_ms: latency,
    ttft_ms: r.int(0, 500),
    reasoning_tokens: r.next() < 0.3 ? r.int(0, 500) : 0,
    price_unknown: r.next() < 0.05,
    batch_id: '',
    ...over,
  }
}

/** `count` rows spread over the last `days` days (and a little into the current hour). */
export async function insertHistory(
  core: Core,
  org: Org,
  count: number,
  days: number,
  seed: number,
  nowMs: number,
) {
  const r = rng(seed)
  const rows: UsageRow[] = []
  for (let i = 0; i < count; i++) {
    rows.push(makeRow(r.pick(org.keys), nowMs - Math.floor(r.next() * days * 86_400_000), r))
  }
  for (let i = 0; i < rows.length; i += 1000)
    await core.warehouse.insertRows('requests', rows.slice(i, i + 1000))
  return rows
}
