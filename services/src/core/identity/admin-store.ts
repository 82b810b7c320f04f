import type { Warehouse } from '../storage/warehouse.ts'
import { toClickHouseTime } from '../usage/usage-row.ts'
import type { ApiKey, Budget, ModelFacade, Role, Session, Team, User } from './entities.ts'
import { generateKeyPlaintext, hashKey, keyPrefix, newId } from './keys.ts'

/**
 * Teams, users, keys, model facades, budgets and settings: durable in ClickHouse
 * (ReplacingMergeTree), served from memory. Writes go to ClickHouse first and
 * then to this process's cache; other processes pick them up on `refresh()`,
 * which server-mode processes run every second so a revocation holds on every
 * instance within a second.
 */
export interface AdminStore {
  refresh(): Promise<void>
  teams(): Team[]
  users(): User[]
  keys(): ApiKey[]
  models(): ModelFacade[]
  budgets(): Budget[]
  team(teamId: string): Team | undefined
  user(userId: string): User | undefined
  key(keyId: string): ApiKey | undefined
  model(name: string): ModelFacade | undefined
  /** The live key for a plaintext, or why it is refused. */
  authenticate(
    plaintext: string,
    now?: Date,
  ): { key: ApiKey; user: User } | { error: 'unknown' | 'revoked' | 'expired' }
  upsertTeam(team: Team): Promise<Team>
  upsertUser(user: User): Promise<User>
  createKey(input: {
    userId: string
    name: string
    allowedModels?: string[]
    expiresAt?: Date | null
    kind?: ApiKey['kind']
    budgetKeyId?: string
  }): Promise<{ key: ApiKey; plaintext: string }>
  revokeKey(keyId: string, at?: Date): Promise<ApiKey>
  /** Changes which models a key may call (the same key id, prefix and hash). */
  setAllowedModels(keyId: string, allowedModels: string[]): Promise<ApiKey>
  /** A new key for the same owner; the old one keeps working until `graceMs` has passed. */
  rotateKey(keyId: string, graceMs: number): Promise<{ key: ApiKey; plaintext: string; old: ApiKey }>
  upsertModel(model: ModelFacade): Promise<ModelFacade>
  deleteModel(model: string): Promise<void>
  upsertBudget(budget: Budget): Promise<Budget>
  deleteBudget(budgetId: string): Promise<void>
  /** An admin setting's stored text, or undefined when never set (the API owns names, defaults and checks). */
  setting(name: string): string | undefined
  putSetting(name: string, value: string): Promise<void>
  /** Sessions not yet past their expiry plus a day (ended ones included, for the admin list). */
  sessions(): Session[]
  session(sessionId: string): Session | undefined
  /**
   * A session by id: from memory, else read from ClickHouse once (made by
   * another instance since the last refresh), so a fresh cookie works at once everywhere.
   */
  loadSession(sessionId: string): Promise<Session | undefined>
  createSession(session: Omit<Session, 'endedAt' | 'endReason'>): Promise<Session>
  /** Ends the session (idempotent); returns it, or undefined if unknown. */
  endSession(sessionId: string, reason: string, at?: Date): Promise<Session | undefined>
  /** Ends every live session matching; returns how many ended. */
  endSessionsWhere(match: (s: Session) => boolean, reason: string): Promise<number>
  /**
   * Exchanges a one-time sign-in token for a session: the token is revoked and
   * the session recorded; when two instances race on one token, at most one
   * session survives (see the body).
   */
  exchangeSignin(
    keyId: string,
    session: Omit<Session, 'endedAt' | 'endReason' | 'source' | 'sourceId'>,
  ): Promise<Session | undefined>
  onChange(listener: () => void): () => void
}

type Row = Record<string, unknown>
const date = (v: unknown): Date | null => (v ? new Date(`${String(v).replace(' ', 'T')}Z`) : null)
const chTime = (d: Date | null): string | null => (d ? toClickHouseTime(d.getTime()) : null)

/** Replaces a cache's contents in place: a write that awaits its insert sets its entity in the map it holds. */
function refill<T>(cache: Map<string, T>, entries: Iterable<[string, T]>) {
  cache.clear()
  for (const [id, value] of entries) cache.set(id, value)
}

// Each entity as a row of its table (`updated_at` and `deleted` are added on write).
const teamRow = (t: Team): Row => ({ team_id: t.teamId, name: t.name })
const userRow = (u: User): Row => ({
  user_id: u.userId,
  email: u.email,
  name: u.name,
  team_id: u.teamId,
  role: u.role,
})
const keyRow = (k: ApiKey): Row => ({
  key_id: k.keyId,
  key_hash: k.keyHash,
  key_prefix: k.keyPrefix,
  name: k.name,
  user_id: k.userId,
  team_id: k.teamId,
  allowed_models: k.allowedModels,
  created_at: chTime(k.createdAt),
  expires_at: chTime(k.expiresAt),
  revoked_at: chTime(k.revokedAt),
  kind: k.kind,
  budget_key_id: k.budgetKeyId ?? '',
})
const modelRow = (m: ModelFacade): Row => ({
  model: m.model,
  provider: m.provider,
  upstream_model: m.upstreamModel,
  input_per_m: String(m.inputPerM),
  output_per_m: String(m.outputPerM),
  cached_read_per_m: String(m.cachedReadPerM),
  cache_write_per_m: String(m.cacheWritePerM),
  price_from_catalogue: m.priceFromCatalogue ?? false,
})
const budgetRow = (b: Budget): Row => ({
  budget_id: b.budgetId,
  scope: b.scope,
  scope_id: b.scopeId,
  period: b.period,
  cap_usd: String(b.capUsd),
  timezone: b.timezone,
  thresholds: b.thresholds,
})
const sessionRow = (s: Session): Row => ({
  session_id: s.sessionId,
  user_id: s.userId,
  team_id: s.teamId,
  role: s.role,
  source: s.source,
  source_id: s.sourceId,
  created_at: chTime(s.createdAt),
  expires_at: chTime(s.expiresAt),
  ended_at: chTime(s.endedAt),
  end_reason: s.endReason,
})

export function createAdminStore(wh: Warehouse): AdminStore {
  const teams = new Map<string, Team>()
  const users = new Map<string, User>()
  const keys = new Map<string, ApiKey>()
  const keysByHash = new Map<string, ApiKey>()
  const models = new Map<string, ModelFacade>()
  const budgets = new Map<string, Budget>()
  const sessions = new Map<string, Session>()
  const settings = new Map<string, string>()
  const listeners = new Set<() => void>()
  // Monotonic version so two writes in one millisecond still order correctly.
  let lastVersion = 0
  const version = () => {
    lastVersion = Math.max(Date.now(), lastVersion + 1)
    return toClickHouseTime(lastVersion)
  }
  const changed = () => {
    for (const l of listeners) l()
  }

  const read = (table: string) => wh.query<Row>(`SELECT * FROM ${table} FINAL WHERE NOT deleted`)
  /** A new version of one row; ReplacingMergeTree keeps the latest, readers skip deleted ones. */
  const writeRow = (table: string, row: Row, deleted = false) =>
    wh.insertRows(table, [{ ...row, updated_at: version(), ...(deleted ? { deleted: true } : {}) }])

  /** Writes an entity, then caches it. */
  async function put<T>(table: string, row: Row, cache: Map<string, T>, id: string, value: T): Promise<T> {
    await writeRow(table, row)
    cache.set(id, value)
    changed()
    return value
  }

  /** Writes a tombstone of a cached entity (none if unknown), then forgets it. */
  async function remove<T>(table: string, cache: Map<string, T>, id: string, toRow: (value: T) => Row) {
    const value = cache.get(id)
    if (!value) return
    await writeRow(table, toRow(value), true)
    cache.delete(id)
    changed()
  }

  function setKey(k: ApiKey) {
    const prev = keys.get(k.keyId)
    if (prev) keysByHash.delete(prev.keyHash)
    keys.set(k.keyId, k)
    keysByHash.set(k.keyHash, k)
  }

  async function writeKey(k: ApiKey) {
    await writeRow('api_keys', keyRow(k))
    setKey(k)
    changed()
  }

  const toSession = (r: Row): Session => ({
    sessionId: String(r.session_id),
    userId: String(r.user_id),
    teamId: String(r.team_id),
    role: r.role as Role,
    source: r.source as Session['source'],
    sourceId: String(r.source_id),
    createdAt: date(r.created_at) ?? new Date(0),
    expiresAt: date(r.expires_at) ?? new Date(0),
    endedAt: date(r.ended_at),
    endReason: String(r.end_reason ?? ''),
  })
  // Ended and expired rows stay listed for a day so admins see what ended and why.
  const readSessions = () =>
    wh.query<Row>('SELECT * FROM sessions FINAL WHERE NOT deleted AND expires_at > now64(3) - INTERVAL 1 DAY')

  const writeSession = (session: Session) =>
    put('sessions', sessionRow(session), sessions, session.sessionId, session)

  const store: AdminStore = {
    async refresh() {
      const [t, u, k, m, b, s, st] = await Promise.all([
        read('teams'),
        read('users'),
        read('api_keys'),
        read('model_facades'),
        read('budgets'),
        readSessions(),
        read('settings'),
      ])
      refill(
        settings,
        st.map((r) => [String(r.name), String(r.value)]),
      )
      refill(
        sessions,
        s.map((r) => [String(r.session_id), toSession(r)]),
      )
      refill(
        teams,
        t.map((r) => [String(r.team_id), { teamId: String(r.team_id), name: String(r.name) }]),
      )
      refill(
        users,
        u.map((r) => [
          String(r.user_id),
          {
            userId: String(r.user_id),
            email: String(r.email),
            name: String(r.name),
            teamId: String(r.team_id),
            role: r.role as Role,
          },
        ]),
      )
      keys.clear()
      keysByHash.clear()
      for (const r of k) {
        setKey({
          keyId: String(r.key_id),
          keyHash: String(r.key_hash),
          keyPrefix: String(r.key_prefix),
          name: String(r.name),
          userId: String(r.user_id),
          teamId: String(r.team_id),
          allowedModels: (r.allowed_models as string[]) ?? [],
          createdAt: date(r.created_at) ?? new Date(0),
          expiresAt: date(r.expires_at),
          revokedAt: date(r.revoked_at),
          kind: r.kind === 'signin' ? 'signin' : 'key',
          ...(r.budget_key_id ? { budgetKeyId: String(r.budget_key_id) } : {}),
        })
      }
      refill(
        models,
        m.map((r) => [
          String(r.model),
          {
            model: String(r.model),
            provider: r.provider as ModelFacade['provider'],
            upstreamModel: String(r.upstream_model),
            inputPerM: Number(r.input_per_m),
            outputPerM: Number(r.output_per_m),
            cachedReadPerM: Number(r.cached_read_per_m),
            cacheWritePerM: Number(r.cache_write_per_m),
            priceFromCatalogue: Boolean(r.price_from_catalogue),
          },
        ]),
      )
      refill(
        budgets,
        b.map((r) => [
          String(r.budget_id),
          {
            budgetId: String(r.budget_id),
            scope: r.scope as Budget['scope'],
            scopeId: String(r.scope_id),
            period: r.period as Budget['period'],
            capUsd: Number(r.cap_usd),
            timezone: String(r.timezone),
            thresholds: (r.thresholds as number[]).map(Number),
          },
        ]),
      )
      changed()
    },
    teams: () => [...teams.values()],
    users: () => [...users.values()],
    keys: () => [...keys.values()].filter((k) => k.kind === 'key'),
    models: () => [...models.values()],
    budgets: () => [...budgets.values()],
    team: (id) => teams.get(id),
    user: (id) => users.get(id),
    key: (id) => keys.get(id),
    model: (name) => models.get(name),
    authenticate(plaintext, now = new Date()) {
      const key = keysByHash.get(hashKey(plaintext))
      const user = key && users.get(key.userId)
      if (!key || !user) return { error: 'unknown' }
      if (key.revokedAt && key.revokedAt <= now) return { error: 'revoked' }
      if (key.expiresAt && key.expiresAt <= now) return { error: 'expired' }
      return { key, user }
    },
    upsertTeam: (team) => put('teams', teamRow(team), teams, team.teamId, team),
    async upsertUser(user) {
      if (user.teamId && !teams.has(user.teamId)) throw new Error(`unknown team ${user.teamId}`)
      await writeRow('users', userRow(user))
      const before = users.get(user.userId)
      users.set(user.userId, user)
      // A key belongs to its owner's team: moving the user moves their keys
      // (and, in the gateway, their future rows and team budgets).
      if (before && before.teamId !== user.teamId) {
        for (const k of [...keys.values()]) {
          if (k.userId === user.userId && k.teamId !== user.teamId)
            await writeKey({ ...k, teamId: user.teamId })
        }
      }
      changed()
      // A session carries the role and team it was made with; a change ends it
      // (validation refuses it too, so this only makes the admin list say why).
      if (before && (before.role !== user.role || before.teamId !== user.teamId)) {
        await store.endSessionsWhere((s) => s.userId === user.userId, 'role or team changed')
      }
      return user
    },
    async createKey({ userId, name, allowedModels = [], expiresAt = null, kind = 'key', budgetKeyId }) {
      const user = users.get(userId)
      if (!user) throw new Error(`unknown user ${userId}`)
      const plaintext = generateKeyPlaintext(kind === 'signin' ? 'tms_' : 'tm_')
      const key: ApiKey = {
        keyId: newId('key'),
        keyHash: hashKey(plaintext),
        keyPrefix: keyPrefix(plaintext),
        name,
        userId,
        teamId: user.teamId,
        allowedModels,
        createdAt: new Date(),
        expiresAt,
        revokedAt: null,
        kind,
        ...(budgetKeyId ? { budgetKeyId } : {}),
      }
      await writeKey(key)
      return { key, plaintext }
    },
    async revokeKey(keyId, at = new Date()) {
      const key = keys.get(keyId)
      if (!key) throw new Error(`unknown key ${keyId}`)
      const revoked = { ...key, revokedAt: at }
      await writeKey(revoked)
      await store.endSessionsWhere((s) => s.source !== 'admin-token' && s.sourceId === keyId, 'key revoked')
      return revoked
    },
    async setAllowedModels(keyId, allowedModels) {
      const key = keys.get(keyId)
      if (!key) throw new Error(`unknown key ${keyId}`)
      const changed = { ...key, allowedModels }
      await writeKey(changed)
      return changed
    },
    async rotateKey(keyId, graceMs) {
      const old = keys.get(keyId)
      if (!old) throw new Error(`unknown key ${keyId}`)
      const fresh = await store.createKey({
        userId: old.userId,
        name: old.name,
        allowedModels: old.allowedModels,
        expiresAt: old.expiresAt,
        // The caps on the old key go on holding the new one, spend included.
        budgetKeyId: old.budgetKeyId ?? old.keyId,
      })
      const graceEnd = new Date(Date.now() + graceMs)
      const ended = {
        ...old,
        expiresAt: old.expiresAt && old.expiresAt < graceEnd ? old.expiresAt : graceEnd,
      }
      await writeKey(ended)
      return { ...fresh, old: ended }
    },
    upsertModel: (model) => put('model_facades', modelRow(model), models, model.model, model),
    deleteModel: (name) => remove('model_facades', models, name, modelRow),
    upsertBudget: (budget) => put('budgets', budgetRow(budget), budgets, budget.budgetId, budget),
    deleteBudget: (budgetId) => remove('budgets', budgets, budgetId, budgetRow),
    setting: (name) => settings.get(name),
    async putSetting(name, value) {
      await put('settings', { name, value }, settings, name, value)
    },
    sessions: () => [...sessions.values()],
    session: (id) => sessions.get(id),
    async loadSession(sessionId) {
      const cached = sessions.get(sessionId)
      if (cached) return cached
      const [row] = await wh.query<Row>(
        'SELECT * FROM sessions FINAL WHERE session_id = {id:String} AND NOT deleted',
        { id: sessionId },
      )
      if (!row) return undefined
      const session = toSession(row)
      sessions.set(sessionId, session)
      return session
    },
    createSession: (session) => writeSession({ ...session, endedAt: null, endReason: '' }),
    async endSession(sessionId, reason, at = new Date()) {
      const s = await store.loadSession(sessionId)
      if (!s || s.endedAt) return s
      return writeSession({ ...s, endedAt: at, endReason: reason })
    },
    async endSessionsWhere(match, reason) {
      const live = [...sessions.values()].filter((s) => !s.endedAt && match(s))
      for (const s of live) await writeSession({ ...s, endedAt: new Date(), endReason: reason })
      return live.length
    },
    async exchangeSignin(keyId, input) {
      const key = keys.get(keyId)
      if (key?.kind !== 'signin') throw new Error(`no sign-in token ${keyId}`)
      const now = new Date()
      await writeKey({ ...key, revokedAt: now })
      const session = await writeSession({
        ...input,
        source: 'signin',
        sourceId: keyId,
        endedAt: null,
        endReason: '',
      })
      // Instances race without a lock: each writes its session, then reads all
      // sessions of the token. Reads follow writes, so of two racers at least
      // one sees both; a racer that sees any other session gives up. At most
      // one session survives (both may lose: the user asks for a new token).
      const rows = await wh.query<{ n: string }>(
        'SELECT count() AS n FROM (SELECT DISTINCT session_id FROM sessions WHERE source_id = {id:String})',
        { id: keyId },
      )
      if (Number(rows[0]?.n ?? 0) > 1) {
        await store.endSession(session.sessionId, 'sign-in token used twice')
        return undefined
      }
      return session
    },
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
  return store
}
