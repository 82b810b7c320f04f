import type { Core } from '../bootstrap.ts'
import type { ApiKey, Team, User } from '../core/identity/entities.ts'
import type { UsageRow } from '../core/usage/usage-row.ts'
import { createRng, hash32 } from './prng.ts'
import {
  type Catalogue,
  type CatalogueKey,
  catalogueApps,
  catalogueModels,
  projectTagSets,
  weighKeys,
} from './usage-catalogue.ts'
import { generateUsageBatches } from './usage-generator.ts'

/**
 * The embedded default's demo: a small organisation (three teams, an admin,
 * leads and members, their keys), model facades on the built-in simulated
 * provider, and about 90 days of usage history. Everything it creates is
 * labelled: team names start with "Demo", ids with `demo-`, projects with
 * `demo-`, and every history row carries the tag `demo`.
 *
 * Idempotent, also after a crash half-way: entities are get-or-create by fixed
 * id or name; history rows are generated deterministically from the seed and
 * the creation time of the demo keys, and each insert carries a dedup token
 * derived from both, so a repeated seed inserts nothing twice.
 */
export interface DemoLiveKey {
  /** Plaintext, in memory only: it drives the live demo traffic. */
  plaintext: string
  keyId: string
  userId: string
  teamId: string
  apps: string[]
  projects: { name: string; tags: string[] }[]
}

export interface DemoSeedResult {
  /** History rows inserted by this call (0 when the history was already complete). */
  insertedRows: number
  historyRows: number
  adminUserId: string
  liveKeys: DemoLiveKey[]
  /** One-time web sign-in token for the demo admin (plaintext, in memory only). */
  signInToken: string
  signInExpiresAt: Date
}

export interface DemoSeedOptions {
  rows?: number
  days?: number
  seed?: number
  /** Rows per ClickHouse insert (one dedup token each). */
  insertRows?: number
  /** Create per-boot live-traffic keys and a sign-in token (default true). */
  liveKeys?: boolean
}

export const DEMO_TAG = 'demo'
export const DEMO_BATCH_PREFIX = 'demo-seed-'
const LIVE_KEY_NAME = 'demo: live traffic'

interface TeamSpec {
  team: Team
  projects: string[]
}
const TEAMS: TeamSpec[] = [
  {
    team: { teamId: 'demo-team-platform', name: 'Demo · Platform' },
    projects: ['demo-platform-gateway', 'demo-platform-codegen', 'demo-platform-docs'],
  },
  {
    team: { teamId: 'demo-team-research', name: 'Demo · Research' },
    projects: ['demo-research-evals', 'demo-research-rag'],
  },
  {
    team: { teamId: 'demo-team-support', name: 'Demo · Support' },
    projects: ['demo-support-chatbot', 'demo-support-triage'],
  },
]

const USERS: User[] = [
  { userId: 'demo-user-ada', name: 'Ada Admin', role: 'admin', teamId: 'demo-team-platform' },
  { userId: 'demo-user-lin', name: 'Lin Lead', role: 'lead', teamId: 'demo-team-platform' },
  { userId: 'demo-user-raj', name: 'Raj Member', role: 'member', teamId: 'demo-team-platform' },
  { userId: 'demo-user-mia', name: 'Mia Member', role: 'member', teamId: 'demo-team-platform' },
  { userId: 'demo-user-grace', name: 'Grace Lead', role: 'lead', teamId: 'demo-team-research' },
  { userId: 'demo-user-ken', name: 'Ken Member', role: 'member', teamId: 'demo-team-research' },
  { userId: 'demo-user-sofia', name: 'Sofia Member', role: 'member', teamId: 'demo-team-research' },
  { userId: 'demo-user-omar', name: 'Omar Lead', role: 'lead', teamId: 'demo-team-support' },
  { userId: 'demo-user-zoe', name: 'Zoe Member', role: 'member', teamId: 'demo-team-support' },
].map((u) => ({ ...u, email: `${u.userId.slice(10)}@demo.tokenmeter.dev` }) as User)

/** History keys: name, owner, the client apps it is used from. */
const KEYS: { userId: string; name: string; apps: string[] }[] = [
  { userId: 'demo-user-ada', name: 'demo: ada laptop', apps: ['cursor', 'sdk-node'] },
  { userId: 'demo-user-lin', name: 'demo: lin laptop', apps: ['claude-code', 'cursor'] },
  { userId: 'demo-user-lin', name: 'demo: gateway ci', apps: ['eval-runner'] },
  { userId: 'demo-user-raj', name: 'demo: raj laptop', apps: ['claude-code'] },
  { userId: 'demo-user-mia', name: 'demo: mia laptop', apps: ['cursor', 'claude-code'] },
  { userId: 'demo-user-mia', name: 'demo: docs builder', apps: ['sdk-python'] },
  { userId: 'demo-user-grace', name: 'demo: grace notebook', apps: ['sdk-python', 'cursor'] },
  { userId: 'demo-user-ken', name: 'demo: eval harness', apps: ['eval-runner', 'sdk-python'] },
  { userId: 'demo-user-sofia', name: 'demo: rag indexer', apps: ['sdk-python'] },
  { userId: 'demo-user-sofia', name: 'demo: sofia laptop', apps: ['claude-code'] },
  { userId: 'demo-user-omar', name: 'demo: support bot', apps: ['support-bot'] },
  { userId: 'demo-user-zoe', name: 'demo: triage service', apps: ['sdk-node', 'support-bot'] },
]

/** Users whose per-boot keys send the live traffic: one per team, so every lead sees movement. */
const LIVE_USERS = ['demo-user-lin', 'demo-user-ken', 'demo-user-zoe', 'demo-user-raj']

export const DEMO_TEAM_IDS = TEAMS.map((t) => t.team.teamId)
export const DEMO_ADMIN_USER_ID = 'demo-user-ada'

/** The demo's model facades: realistic names and list prices, served by the simulated provider. */
export function demoModels() {
  return catalogueModels('simulated')
}

async function ensureEntities(core: Core): Promise<ApiKey[]> {
  const { store } = core
  for (const m of demoModels()) {
    // An admin may have changed a demo price: never overwrite an existing facade.
    if (!store.model(m.facade.model)) await store.upsertModel(m.facade)
  }
  for (const { team } of TEAMS) if (!store.team(team.teamId)) await store.upsertTeam(team)
  for (const user of USERS) if (!store.user(user.userId)) await store.upsertUser(user)
  const keys: ApiKey[] = []
  for (const spec of KEYS) {
    keys.push(
      findDemoKey(core, spec) ?? (await store.createKey({ userId: spec.userId, name: spec.name })).key,
    )
  }
  return keys
}

function findDemoKey(core: Core, spec: { userId: string; name: string }): ApiKey | undefined {
  return core.store
    .keys()
    .filter((k) => k.userId === spec.userId && k.name === spec.name && !k.revokedAt)
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())[0]
}

/** The demo's history keys in catalogue order (after a seed). */
export function demoHistoryKeys(core: Core): ApiKey[] {
  return KEYS.map((spec) => {
    const key = findDemoKey(core, spec)
    if (!key) throw new Error(`demo key ${spec.name} is missing: run seedDemo first`)
    return key
  })
}

/** The catalogue the history is generated from: the real demo keys, with fixed usage habits. */
export function demoCatalogue(keys: readonly ApiKey[], seed: number): Catalogue {
  const rng = createRng(hash32('demo-catalogue', seed))
  const models = demoModels()
  const apps = catalogueApps(models)
  const projects = TEAMS.flatMap(({ team, projects }) =>
    projects.map((name) => ({ name, teamId: team.teamId, tagSets: projectTagSets(rng, [DEMO_TAG]) })),
  )
  const raw = KEYS.map((spec, i) => {
    const key = keys[i] as ApiKey
    const teamProjects = projects.flatMap((p, j) => (p.teamId === key.teamId ? [j] : []))
    const first = Math.floor(rng() * teamProjects.length)
    return {
      keyId: key.keyId,
      keyPrefix: key.keyPrefix,
      name: key.name,
      userId: key.userId,
      teamId: key.teamId,
      apps: spec.apps.map((a) => apps.findIndex((x) => x.name === a)).filter((x) => x >= 0),
      projects: teamProjects.map((_, j) => teamProjects[(first + j) % teamProjects.length] as number),
    }
  })
  return {
    teams: TEAMS.map((t) => t.team),
    users: USERS,
    keys: weighKeys(raw, rng, 0.9),
    models,
    apps,
    projects,
  }
}

async function demoHistoryCount(core: Core): Promise<number> {
  const [row] = await core.warehouse.query<{ n: string }>(
    'SELECT count() AS n FROM requests WHERE team_id IN {teams:Array(String)} AND startsWith(batch_id, {prefix:String})',
    { teams: DEMO_TEAM_IDS, prefix: DEMO_BATCH_PREFIX },
  )
  return Number(row?.n ?? 0)
}

export async function insertDemoHistory(
  core: Core,
  keys: ApiKey[],
  opts: Required<Pick<DemoSeedOptions, 'rows' | 'days' | 'seed' | 'insertRows'>>,
): Promise<void> {
  // Anchored at the demo keys' creation, not at "now": a re-run after a crash
  // regenerates exactly the same rows and dedup tokens.
  const anchor = Math.floor(Math.min(...keys.map((k) => k.createdAt.getTime())) / 3_600_000) * 3_600_000
  const genBatch = 5_000
  const perInsert = Math.max(1, Math.round(opts.insertRows / genBatch))
  const token = (group: number) => `${DEMO_BATCH_PREFIX}${opts.seed}-${anchor}-${group}`
  let pending: UsageRow[] = []
  let group = 0
  const flush = async () => {
    if (pending.length === 0) return
    await core.warehouse.insertRows('requests', pending, { dedupToken: token(group) })
    pending = []
    group++
  }
  for (const batch of generateUsageBatches({
    catalogue: demoCatalogue(keys, opts.seed),
    seed: opts.seed,
    from: anchor - opts.days * 86_400_000,
    to: anchor,
    rows: opts.rows,
    batchSize: genBatch,
    batchId: (i) => token(Math.floor(i / perInsert)),
  })) {
    for (const row of batch.rows) pending.push(row)
    if ((batch.index + 1) % perInsert === 0) await flush()
  }
  await flush()
}

/** Revokes the previous boot's live-traffic keys (their plaintexts died with it) and makes fresh ones. */
async function createLiveKeys(core: Core, catalogue: Catalogue): Promise<DemoLiveKey[]> {
  const { store } = core
  for (const k of store.keys()) {
    if (k.name === LIVE_KEY_NAME && !k.revokedAt && LIVE_USERS.includes(k.userId))
      await store.revokeKey(k.keyId)
  }
  const out: DemoLiveKey[] = []
  for (const userId of LIVE_USERS) {
    const { key, plaintext } = await store.createKey({
      userId,
      name: LIVE_KEY_NAME,
      // Bounded even if the demo is switched off and nothing revokes it.
      expiresAt: new Date(Date.now() + 30 * 86_400_000),
    })
    const history = catalogue.keys.filter((k) => k.userId === userId)
    const apps = [...new Set(history.flatMap((k: CatalogueKey) => k.apps))].map(
      (i) => catalogue.apps[i]?.name ?? 'sdk-node',
    )
    const projects = catalogue.projects
      .filter((p) => p.teamId === key.teamId)
      .map((p) => ({ name: p.name, tags: p.tagSets[0] ?? [DEMO_TAG] }))
    out.push({ plaintext, keyId: key.keyId, userId, teamId: key.teamId, apps, projects })
  }
  return out
}

export async function seedDemo(core: Core, opts: DemoSeedOptions = {}): Promise<DemoSeedResult> {
  const rows = opts.rows ?? core.env.DEMO_HISTORY_ROWS
  const days = opts.days ?? core.env.DEMO_HISTORY_DAYS
  const seed = opts.seed ?? 20_240_601
  const keys = await ensureEntities(core)
  const existing = await demoHistoryCount(core)
  if (existing < rows)
    await insertDemoHistory(core, keys, { rows, days, seed, insertRows: opts.insertRows ?? 50_000 })
  const historyRows = existing < rows ? await demoHistoryCount(core) : existing
  // Batches a previous, interrupted seed already stored were dropped by their dedup token.
  const insertedRows = historyRows - existing

  let liveKeys: DemoLiveKey[] = []
  let signInToken = ''
  const signInExpiresAt = new Date(Date.now() + 24 * 3_600_000)
  if (opts.liveKeys !== false) {
    liveKeys = await createLiveKeys(core, demoCatalogue(keys, seed))
    signInToken = (
      await core.store.createKey({
        userId: DEMO_ADMIN_USER_ID,
        name: 'demo: sign-in',
        kind: 'signin',
        expiresAt: signInExpiresAt,
      })
    ).plaintext
  }
  return {
    insertedRows,
    historyRows,
    adminUserId: DEMO_ADMIN_USER_ID,
    liveKeys,
    signInToken,
    signInExpiresAt,
  }
}
