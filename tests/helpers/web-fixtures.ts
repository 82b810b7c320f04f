import type { Core } from '../../services/src/bootstrap.ts'
import type { ModelFacade } from '../../services/src/core/identity/entities.ts'
import { costNanos, nanosToUsdString } from '../../services/src/core/pricing/pricing.ts'
import { toClickHouseTime, type UsageRow } from '../../services/src/core/usage/usage-row.ts'

/**
 * A small, deterministic organisation with a month of traffic, for the
 * dashboard's browser tests and screenshots: three teams, seven people, ten
 * keys, four priced models, tags, and rows spread over the last 30 days.
 */
export const MODELS: ModelFacade[] = [
  {
    model: 'gpt-4o',
    provider: 'openai',
    upstreamModel: 'gpt-4o',
    inputPerM: 2.5,
    outputPerM: 10,
    cachedReadPerM: 1.25,
    cacheWritePerM: 0,
  },
  {
    model: 'gpt-4o-mini',
    provider: 'openai',
    upstreamModel: 'gpt-4o-mini',
    inputPerM: 0.15,
    outputPerM: 0.6,
    cachedReadPerM: 0.075,
    cacheWritePerM: 0,
  },
  {
    model: 'claude-sonnet-4',
    provider: 'anthropic',
    upstreamModel: 'claude-sonnet-4-20250514',
    inputPerM: 3,
    outputPerM: 15,
    cachedReadPerM: 0.3,
    cacheWritePerM: 3.75,
  },
  {
    model: 'sim-chat',
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 0.5,
    outputPerM: 1.5,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
  },
  {
    model: 'claude-haiku-3.5',
    provider: 'anthropic',
    upstreamModel: 'claude-3-5-haiku-latest',
    inputPerM: 0.8,
    outputPerM: 4,
    cachedReadPerM: 0.08,
    cacheWritePerM: 1,
  },
]

const TEAMS = [
  { teamId: 'team-platform', name: 'Platform' },
  { teamId: 'team-research', name: 'Research' },
  { teamId: 'team-growth', name: 'Growth' },
]

const USERS = [
  {
    userId: 'u-ada',
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    teamId: 'team-platform',
    role: 'lead' as const,
  },
  {
    userId: 'u-alan',
    name: 'Alan Turing',
    email: 'alan@example.com',
    teamId: 'team-platform',
    role: 'member' as const,
  },
  {
    userId: 'u-grace',
    name: 'Grace Hopper',
    email: 'grace@example.com',
    teamId: 'team-research',
    role: 'lead' as const,
  },
  {
    userId: 'u-edsger',
    name: 'Edsger Dijkstra',
    email: 'edsger@example.com',
    teamId: 'team-research',
    role: 'member' as const,
  },
  {
    userId: 'u-barbara',
    name: 'Barbara Liskov',
    email: 'barbara@example.com',
    teamId: 'team-growth',
    role: 'lead' as const,
  },
  {
    userId: 'u-ken',
    name: 'Ken Thompson',
    email: 'ken@example.com',
    teamId: 'team-growth',
    role: 'member' as const,
  },
  {
    userId: 'u-margaret',
    name: 'Margaret Hamilton',
    email: 'margaret@example.com',
    teamId: 'team-research',
    role: 'admin' as const,
  },
]

const KEY_PLAN: { userId: string; name: string; models: string[]; weight: number }[] = [
  { userId: 'u-ada', name: 'ada-cursor', models: ['claude-sonnet-4', 'gpt-4o'], weight: 5 },
  { userId: 'u-ada', name: 'ada-ci', models: ['gpt-4o-mini'], weight: 2 },
  {
    userId: 'u-alan',
    name: 'alan-laptop',
    models: ['gpt-4o', 'gpt-4o-mini', 'claude-haiku-3.5', 'claude-sonnet-4'],
    weight: 3,
  },
  { userId: 'u-grace', name: 'grace-notebooks', models: ['claude-sonnet-4', 'claude-haiku-3.5'], weight: 6 },
  { userId: 'u-grace', name: 'grace-eval', models: ['gpt-4o', 'claude-sonnet-4'], weight: 4 },
  { userId: 'u-edsger', name: 'edsger-agent', models: ['claude-haiku-3.5'], weight: 2 },
  { userId: 'u-barbara', name: 'barbara-support-bot', models: ['gpt-4o-mini', 'gpt-4o'], weight: 5 },
  { userId: 'u-ken', name: 'ken-cli', models: ['gpt-4o-mini'], weight: 1 },
  { userId: 'u-margaret', name: 'margaret-admin', models: ['claude-sonnet-4'], weight: 1 },
  { userId: 'u-margaret', name: 'margaret-batch', models: ['gpt-4o-mini', 'claude-haiku-3.5'], weight: 2 },
]

const TAG_SETS = [['prod'], ['prod', 'chat'], ['eval'], ['batch'], ['dev'], []]
const APPS = ['cursor', 'claude-code', 'sdk', 'notebook']
const PROJECTS = ['checkout', 'search', 'docs-bot', 'research']

export interface SeededOrg {
  keys: { keyId: string; name: string; userId: string; teamId: string; plaintext: string; prefix: string }[]
  rows: number
}

/** Tiny LCG so the fixture is the same on every run. */
function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

export async function seedOrg(core: Core, opts: { days?: number; now?: number } = {}): Promise<SeededOrg> {
  const days = opts.days ?? 30
  const now = opts.now ?? Date.now()
  for (const m of MODELS) await core.store.upsertModel(m)
  for (const t of TEAMS) await core.store.upsertTeam(t)
  for (const u of USERS) await core.store.upsertUser(u)
  const keys: SeededOrg['keys'] = []
  for (const k of KEY_PLAN) {
    const { key, plaintext } = await core.store.createKey({ userId: k.userId, name: k.name })
    keys.push({
      keyId: key.keyId,
      name: k.name,
      userId: k.userId,
      teamId: key.teamId,
      plaintext,
      prefix: key.keyPrefix,
    })
  }
  const rand = rng(42)
  const rows: UsageRow[] = []
  const DAY = 86_400_000
  for (let d = days - 1; d >= 0; d--) {
    // Weekdays busier, and a gentle upward trend towards today.
    const dayStart = Math.floor((now - d * DAY) / DAY) * DAY
    const weekday = new Date(dayStart).getUTCDay()
    const busy = (weekday === 0 || weekday === 6 ? 0.35 : 1) * (0.6 + (0.4 * (days - d)) / days)
    KEY_PLAN.forEach((plan, ki) => {
      const n = Math.round(plan.weight * busy * (1 + rand() * 1.5))
      for (let i = 0; i < n; i++) {
        const started = Math.min(now - 1_000, dayStart + Math.floor(rand() * DAY))
        const model = plan.models[Math.floor(rand() * plan.models.length)]!
        const facade = MODELS.find((m) => m.model === model)!
        const input = 200 + Math.floor(rand() * 6_000)
        const cached = rand() < 0.4 ? Math.floor(input * rand() * 0.6) : 0
        const output = 50 + Math.floor(rand() * 1_500)
        const error = rand() < 0.03
        const tokens = {
          input: input - cached,
          output: error ? 0 : output,
          cachedRead: cached,
          cacheWrite: 0,
        }
        const key = keys[ki]!
        const latency = 300 + Math.floor(rand() * 4_000)
        rows.push({
          request_id: crypto.randomUUID(),
          started_at: toClickHouseTime(started),
          ended_at: toClickHouseTime(started + latency),
          key_id: key.keyId,
          key_prefix: key.prefix,
          user_id: plan.userId,
          team_id: key.teamId,
          project: PROJECTS[(ki + i) % PROJECTS.length]!,
          client_app: APPS[ki % APPS.length]!,
          tags: TAG_SETS[Math.floor(rand() * TAG_SETS.length)]!,
          provider: facade.provider,
          model,
          upstream_model: facade.upstreamModel,
          endpoint: facade.provider === 'anthropic' ? '/v1/messages' : '/v1/chat/completions',
          streamed: rand() < 0.6,
          status_code: error ? 429 : 200,
          error_class: error ? 'rate_limited' : '',
          input_tokens: tokens.input,
          output_tokens: tokens.output,
          cached_read_tokens: tokens.cachedRead,
          cache_write_tokens: 0,
          tokens_estimated: false,
          cost_usd: nanosToUsdString(costNanos(tokens, facade)),
          latency_ms: latency,
          ttft_ms: Math.floor(latency / 4),
          batch_id: 'web-fixture',
        })
      }
    })
  }
  rows.sort((a, b) => a.started_at.localeCompare(b.started_at))
  await core.warehouse.insertRows('requests', rows)
  return { keys, rows: rows.length }
}

/** One fresh row "now" for a key, as the gateway would record it. */
export function liveRow(key: SeededOrg['keys'][number], model = 'gpt-4o-mini'): UsageRow {
  const facade = MODELS.find((m) => m.model === model)!
  const now = Date.now()
  const tokens = { input: 1234, output: 321, cachedRead: 0, cacheWrite: 0 }
  return {
    request_id: crypto.randomUUID(),
    started_at: toClickHouseTime(now - 800),
    ended_at: toClickHouseTime(now),
    key_id: key.keyId,
    key_prefix: key.prefix,
    user_id: key.userId,
    team_id: key.teamId,
    project: 'live-test',
    client_app: 'sdk',
    tags: ['prod'],
    provider: facade.provider,
    model,
    upstream_model: facade.upstreamModel,
    endpoint: '/v1/chat/completions',
    streamed: false,
    status_code: 200,
    error_class: '',
    input_tokens: tokens.input,
    output_tokens: tokens.output,
    cached_read_tokens: 0,
    cache_write_tokens: 0,
    tokens_estimated: false,
    cost_usd: nanosToUsdString(costNanos(tokens, facade)),
    latency_ms: 800,
    ttft_ms: 200,
    batch_id: '',
  }
}
