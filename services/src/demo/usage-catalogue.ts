import type { ModelFacade, Provider, Team, User } from '../core/identity/entities.ts'
import { normalizeTags } from '../core/usage/usage-row.ts'
import { createRng, hash32, type Rng, shuffled, zipfWeights } from './prng.ts'

/**
 * The entities synthetic usage is attributed to: teams, users, keys, model
 * facades, projects, client apps and tag sets, with the weights that make
 * the traffic skewed the way real gateway traffic is (a few heavy keys, a
 * long tail; each client app favouring its own models).
 */
export type ModelApi = 'openai' | 'anthropic' | 'embeddings'

export interface CatalogueModel {
  facade: ModelFacade
  api: ModelApi
  /** Median uncached prompt tokens and completion tokens (log-normal around these). */
  inputMedian: number
  outputMedian: number
  /** Share of requests whose prompt partly hits the provider's prompt cache. */
  cacheHitRate: number
  /** Generation speed and time to first token, for latency. */
  msPerOutputToken: number
  ttftMedianMs: number
  /** Reasoning models: the share of output tokens spent thinking (a part of output, billed with it). */
  reasoningShare?: number
}

export interface CatalogueApp {
  name: string
  /** Indexes into `models` with relative weights. */
  models: { model: number; weight: number }[]
  streamRate: number
}

export interface CatalogueProject {
  name: string
  teamId: string
  /** Normalised (sorted) tag sets a request of this project carries. */
  tagSets: string[][]
}

export interface CatalogueKey {
  keyId: string
  keyPrefix: string
  name: string
  userId: string
  teamId: string
  /** Relative share of all traffic (Zipf over a shuffled rank). */
  weight: number
  /** Indexes into `apps` / `projects`; the first is the key's usual one. */
  apps: number[]
  projects: number[]
}

export interface Catalogue {
  teams: Team[]
  users: User[]
  keys: CatalogueKey[]
  models: CatalogueModel[]
  apps: CatalogueApp[]
  projects: CatalogueProject[]
}

interface ModelSpec extends Omit<CatalogueModel, 'facade'> {
  model: string
  vendor: 'openai' | 'anthropic'
  upstreamModel: string
  inputPerM: number
  outputPerM: number
  cachedReadPerM: number
  cacheWritePerM: number
}

/** List prices in USD per million tokens (input, output, cached read, cache write). */
const MODEL_SPECS: ModelSpec[] = [
  {
    model: 'gpt-4o',
    vendor: 'openai',
    upstreamModel: 'gpt-4o-2024-08-06',
    api: 'openai',
    inputPerM: 2.5,
    outputPerM: 10,
    cachedReadPerM: 1.25,
    cacheWritePerM: 0,
    inputMedian: 1800,
    outputMedian: 350,
    cacheHitRate: 0.35,
    msPerOutputToken: 12,
    ttftMedianMs: 450,
  },
  {
    model: 'gpt-4o-mini',
    vendor: 'openai',
    upstreamModel: 'gpt-4o-mini-2024-07-18',
    api: 'openai',
    inputPerM: 0.15,
    outputPerM: 0.6,
    cachedReadPerM: 0.075,
    cacheWritePerM: 0,
    inputMedian: 1200,
    outputMedian: 220,
    cacheHitRate: 0.3,
    msPerOutputToken: 7,
    ttftMedianMs: 300,
  },
  {
    model: 'gpt-4.1',
    vendor: 'openai',
    upstreamModel: 'gpt-4.1-2025-04-14',
    api: 'openai',
    inputPerM: 2,
    outputPerM: 8,
    cachedReadPerM: 0.5,
    cacheWritePerM: 0,
    inputMedian: 6000,
    outputMedian: 500,
    cacheHitRate: 0.5,
    msPerOutputToken: 11,
    ttftMedianMs: 500,
  },
  {
    model: 'o4-mini',
    vendor: 'openai',
    upstreamModel: 'o4-mini-2025-04-16',
    api: 'openai',
    inputPerM: 1.1,
    outputPerM: 4.4,
    cachedReadPerM: 0.275,
    cacheWritePerM: 0,
    inputMedian: 2500,
    outputMedian: 1400,
    cacheHitRate: 0.25,
    msPerOutputToken: 9,
    ttftMedianMs: 2500,
    reasoningShare: 0.6,
  },
  {
    model: 'claude-sonnet-4',
    vendor: 'anthropic',
    upstreamModel: 'claude-sonnet-4-20250514',
    api: 'anthropic',
    inputPerM: 3,
    outputPerM: 15,
    cachedReadPerM: 0.3,
    cacheWritePerM: 3.75,
    inputMedian: 4000,
    outputMedian: 600,
    cacheHitRate: 0.7,
    msPerOutputToken: 14,
    ttftMedianMs: 700,
  },
  {
    model: 'claude-haiku-3.5',
    vendor: 'anthropic',
    upstreamModel: 'claude-3-5-haiku-20241022',
    api: 'anthropic',
    inputPerM: 0.8,
    outputPerM: 4,
    cachedReadPerM: 0.08,
    cacheWritePerM: 1,
    inputMedian: 1500,
    outputMedian: 250,
    cacheHitRate: 0.5,
    msPerOutputToken: 6,
    ttftMedianMs: 350,
  },
  {
    model: 'claude-opus-4',
    vendor: 'anthropic',
    upstreamModel: 'claude-opus-4-20250514',
    api: 'anthropic',
    inputPerM: 15,
    outputPerM: 75,
    cachedReadPerM: 1.5,
    cacheWritePerM: 18.75,
    inputMedian: 5000,
    outputMedian: 800,
    cacheHitRate: 0.6,
    msPerOutputToken: 25,
    ttftMedianMs: 1200,
  },
  {
    model: 'text-embedding-3-small',
    vendor: 'openai',
    upstreamModel: 'text-embedding-3-small',
    api: 'embeddings',
    inputPerM: 0.02,
    outputPerM: 0,
    cachedReadPerM: 0,
    cacheWritePerM: 0,
    inputMedian: 600,
    outputMedian: 0,
    cacheHitRate: 0,
    msPerOutputToken: 0,
    ttftMedianMs: 80,
  },
]

/** Client apps and the models each mostly uses (by facade name). */
const APP_SPECS: { name: string; streamRate: number; models: Record<string, number> }[] = [
  {
    name: 'claude-code',
    streamRate: 0.95,
    models: { 'claude-sonnet-4': 70, 'claude-haiku-3.5': 20, 'claude-opus-4': 10 },
  },
  {
    name: 'cursor',
    streamRate: 0.9,
    models: { 'claude-sonnet-4': 45, 'gpt-4.1': 25, 'gpt-4o': 20, 'o4-mini': 10 },
  },
  {
    name: 'sdk-python',
    streamRate: 0.3,
    models: { 'gpt-4o-mini': 40, 'gpt-4o': 20, 'text-embedding-3-small': 30, 'claude-haiku-3.5': 10 },
  },
  {
    name: 'sdk-node',
    streamRate: 0.5,
    models: { 'gpt-4o-mini': 35, 'gpt-4o': 25, 'claude-sonnet-4': 25, 'text-embedding-3-small': 15 },
  },
  { name: 'support-bot', streamRate: 0.8, models: { 'gpt-4o-mini': 60, 'claude-haiku-3.5': 40 } },
  { name: 'eval-runner', streamRate: 0.05, models: { 'gpt-4o': 30, 'claude-sonnet-4': 30, 'o4-mini': 40 } },
]

const TEAM_NAMES = [
  'Platform',
  'Search',
  'Growth',
  'Mobile',
  'Data Science',
  'Support',
  'Research',
  'Payments',
  'Security',
  'Infra',
  'Design',
  'Sales Engineering',
]
const PROJECT_WORDS = [
  'assistant',
  'copilot',
  'summarizer',
  'triage',
  'rag',
  'evals',
  'codegen',
  'classifier',
  'translate',
  'agent',
  'insights',
  'onboarding',
]
const TAG_POOL = [
  'prod',
  'staging',
  'dev',
  'batch',
  'interactive',
  'experiment',
  'customer-facing',
  'internal',
]
const FIRST = ['ada', 'alan', 'grace', 'linus', 'margaret', 'ken', 'barbara', 'dennis', 'frances', 'edsger']
const LAST = [
  'lovelace',
  'turing',
  'hopper',
  'torvalds',
  'hamilton',
  'thompson',
  'liskov',
  'ritchie',
  'allen',
]

export interface CatalogueOptions {
  seed: number
  teams?: number
  usersPerTeam?: number
  /** Mean keys per user (each user has at least one). */
  keysPerUser?: number
  /** Provider to record for every model instead of its vendor (the demo uses 'simulated'). */
  provider?: Provider
  /** Prefix of every id and name, so synthetic entities are recognisable ('demo', 'bench'). */
  prefix?: string
  /** Zipf exponent of key traffic; about 1 gives a heavy head and a long tail. */
  skew?: number
}

export function catalogueModels(provider?: Provider): CatalogueModel[] {
  return MODEL_SPECS.map(
    ({ model, vendor, upstreamModel, inputPerM, outputPerM, cachedReadPerM, cacheWritePerM, ...rest }) => ({
      ...rest,
      facade: {
        model,
        provider: provider ?? vendor,
        upstreamModel,
        inputPerM,
        outputPerM,
        cachedReadPerM,
        cacheWritePerM,
      },
    }),
  )
}

export function catalogueApps(models: readonly CatalogueModel[]): CatalogueApp[] {
  return APP_SPECS.map((spec) => ({
    name: spec.name,
    streamRate: spec.streamRate,
    models: Object.entries(spec.models).flatMap(([name, weight]) => {
      const model = models.findIndex((m) => m.facade.model === name)
      return model >= 0 ? [{ model, weight }] : []
    }),
  }))
}

/** Several tag sets per project, drawn from a small pool, normalised like the x-tags header. */
export function projectTagSets(rng: Rng, extra: readonly string[] = []): string[][] {
  const env = rng() < 0.8 ? 'prod' : 'staging'
  const sets = [
    [env, ...extra],
    [env, TAG_POOL[3 + Math.floor(rng() * 5)] as string, ...extra],
    ['dev', ...extra],
  ]
  return sets.map((s) => normalizeTags(s.join(',')))
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-')

/**
 * A synthetic organisation. Key ids and prefixes are fake (no plaintext
 * exists): rows generated from it are for benchmarks and tests; the demo seed
 * builds its catalogue from the real entities it created instead.
 */
export function createCatalogue(opts: CatalogueOptions): Catalogue {
  const rng = createRng(hash32('catalogue', opts.seed))
  const prefix = opts.prefix ?? 'syn'
  const models = catalogueModels(opts.provider)
  const apps = catalogueApps(models)
  const teams: Team[] = []
  const users: User[] = []
  const projects: CatalogueProject[] = []
  const keys: Omit<CatalogueKey, 'weight'>[] = []
  const teamCount = opts.teams ?? 8
  const usersPerTeam = opts.usersPerTeam ?? 12
  const keysPerUser = opts.keysPerUser ?? 1.5
  for (let t = 0; t < teamCount; t++) {
    const base = TEAM_NAMES[t % TEAM_NAMES.length] as string
    const name = t < TEAM_NAMES.length ? base : `${base} ${Math.floor(t / TEAM_NAMES.length) + 1}`
    const teamId = `${prefix}-team-${slug(name)}`
    teams.push({ teamId, name })
    const firstProject = projects.length
    const projectCount = 2 + Math.floor(rng() * 3)
    for (let p = 0; p < projectCount; p++) {
      const word = PROJECT_WORDS[(t * 3 + p) % PROJECT_WORDS.length] as string
      projects.push({
        name: `${prefix}-${slug(base)}-${word}`,
        teamId,
        tagSets: projectTagSets(rng, [prefix]),
      })
    }
    const teamProjects = Array.from({ length: projectCount }, (_, i) => firstProject + i)
    for (let u = 0; u < usersPerTeam; u++) {
      const first = FIRST[Math.floor(rng() * FIRST.length)] as string
      const last = LAST[Math.floor(rng() * LAST.length)] as string
      const userId = `${prefix}-user-${t}-${u}`
      users.push({
        userId,
        email: `${first}.${last}.${t}${u}@${prefix}.example.com`,
        name: `${first[0]?.toUpperCase()}${first.slice(1)} ${last[0]?.toUpperCase()}${last.slice(1)}`,
        teamId,
        role: u === 0 ? (t === 0 ? 'admin' : 'lead') : 'member',
      })
      const n = 1 + Math.floor(rng() * 2 * (keysPerUser - 1) + rng())
      for (let k = 0; k < n; k++) {
        const keyId = `${prefix}-key-${t}-${u}-${k}`
        const tail = (hash32(keyId) % 1_000_000).toString(36).padStart(4, '0')
        keys.push({
          keyId,
          keyPrefix: `tm_${prefix.slice(0, 3)}${tail}`.slice(0, 10).concat('…'),
          name: k === 0 ? `${first}'s laptop` : `${first}'s service ${k}`,
          userId,
          teamId,
          apps: pickApps(rng, apps.length),
          projects: rotate(teamProjects, Math.floor(rng() * teamProjects.length)),
        })
      }
    }
  }
  return { teams, users, keys: weighKeys(keys, rng, opts.skew ?? 1.05), models, apps, projects }
}

/** Each key uses one app mostly, sometimes a second one. */
export function pickApps(rng: Rng, appCount: number): number[] {
  const first = Math.floor(rng() * appCount)
  const second = (first + 1 + Math.floor(rng() * (appCount - 1))) % appCount
  return appCount > 1 ? [first, second] : [first]
}

export function rotate<T>(items: readonly T[], by: number): T[] {
  return items.map((_, i) => items[(i + by) % items.length] as T)
}

/** Zipf weights assigned over a shuffled key order, so heavy keys are spread over teams. */
export function weighKeys(keys: Omit<CatalogueKey, 'weight'>[], rng: Rng, skew: number): CatalogueKey[] {
  const weights = zipfWeights(keys.length, skew)
  const order = shuffled(
    keys.map((_, i) => i),
    rng,
  )
  const out = keys.map((k) => ({ ...k, weight: 0 }))
  order.forEach((keyIndex, rank) => {
    ;(out[keyIndex] as CatalogueKey).weight = weights[rank] as number
  })
  return out
}
