import {
  BUILTIN_PROVIDERS,
  type KeyView,
  keyBody,
  keyChangeBody,
  keyCreatedResponse,
  keyIdParams,
  keyResponse,
  keyRotatedResponse,
  keysResponse,
  modelFacadeBody,
  modelParams,
  modelResponse,
  modelsResponse,
  rotateBody,
  type SessionView,
  sessionIdParams,
  sessionResponse,
  sessionsResponse,
  signinTokenBody,
  signinTokenResponse,
  teamBody,
  teamResponse,
  teamsResponse,
  userBody,
  userResponse,
  usersResponse,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import type { ApiKey, Session } from '../core/identity/entities.ts'
import { keyStatus, newId } from '../core/identity/keys.ts'
import { sessionStatus } from '../core/identity/session-validity.ts'
import { requireRole } from './auth.plugin.ts'
import { created, deleted, refusal, responses } from './route-schemas.ts'

/** How long a one-time web sign-in token stays valid. */
const SIGNIN_TOKEN_TTL_MS = 10 * 60 * 1000

/** A key as the API shows it: never the hash, only the prefix. */
function publicKey(k: ApiKey, now = new Date()): KeyView {
  return {
    keyId: k.keyId,
    name: k.name,
    prefix: k.keyPrefix,
    userId: k.userId,
    teamId: k.teamId,
    allowedModels: k.allowedModels,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt?.toISOString() ?? null,
    revokedAt: k.revokedAt?.toISOString() ?? null,
    status: keyStatus(k, now),
  }
}

/** A session as the admin list shows it; `status` is the same rule every request is checked with. */
function publicSession(s: Session, status: ReturnType<typeof sessionStatus>, who: string): SessionView {
  return {
    sessionId: s.sessionId,
    userId: s.userId,
    who,
    teamId: s.teamId,
    role: s.role,
    source: s.source,
    // The admin-token fingerprint is not shown: it would help nobody and is derived from a secret.
    sourceId: s.source === 'admin-token' ? '' : s.sourceId,
    createdAt: s.createdAt.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    endedAt: s.endedAt?.toISOString() ?? null,
    status: status.ok ? 'active' : 'ended',
    endReason: status.ok ? '' : status.reason,
  }
}

/**
 * Admin API (admin role only): teams, users, virtual keys, model facades and
 * web sign-in tokens. Budgets live in budgets.routes.ts, ops in ops.routes.ts.
 * Bodies, parameters and answers are the contract's (admin-api.schema.ts).
 */
export const adminRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const modelBody = modelFacadeBody([...BUILTIN_PROVIDERS, ...core.env.namedUpstreams.map((u) => u.name)])
  const { store } = core
  // Before validation: a caller who is not an admin hears 401/403, not which field was wrong.
  app.addHook('preValidation', requireRole('admin'))
  const doc = (summary: string) => ({ tags: ['admin'], summary })
  const noKey = refusal('No such key')

  const knownKey = (keyId: string) => {
    const key = store.key(keyId)
    if (key?.kind !== 'key')
      throw new HttpError(404, 'not_found', `No key ${keyId}; see GET /api/admin/keys.`)
    return key
  }
  // With passthrough any name may be served, so only a facade-only gateway can call a name unknown.
  const knownModels = (names: string[]) => {
    const unknown = core.env.MODEL_PASSTHROUGH ? [] : names.filter((m) => !m.includes('*') && !store.model(m))
    if (unknown.length > 0) {
      throw new HttpError(
        400,
        'unknown_model',
        `Invalid key: allowedModels names unknown models (${unknown.join(', ')}); add them with PUT /api/admin/models/:model first.`,
      )
    }
  }
  const knownUser = (userId: string) => {
    const user = store.user(userId)
    if (!user)
      throw new HttpError(400, 'unknown_user', `No user ${userId}; create it with POST /api/admin/users.`)
    return user
  }

  app.get('/teams', { schema: { ...doc('Teams'), response: responses(teamsResponse) } }, async () => ({
    teams: store.teams(),
  }))
  app.post(
    '/teams',
    { schema: { ...doc('Create or rename a team'), body: teamBody, response: created(teamResponse) } },
    async (request, reply) => {
      const b = request.body
      const team = await store.upsertTeam({ teamId: b.teamId ?? newId('team'), name: b.name })
      return reply.code(201).send({ team })
    },
  )

  app.get('/users', { schema: { ...doc('Users'), response: responses(usersResponse) } }, async () => ({
    users: store.users(),
  }))
  app.post(
    '/users',
    { schema: { ...doc('Create or update a user'), body: userBody, response: created(userResponse) } },
    async (request, reply) => {
      const b = request.body
      if (!store.team(b.teamId)) {
        throw new HttpError(400, 'unknown_team', `No team ${b.teamId}; create it with POST /api/admin/teams.`)
      }
      const user = await store.upsertUser({
        userId: b.userId ?? newId('user'),
        email: b.email,
        name: b.name,
        teamId: b.teamId,
        role: b.role,
      })
      return reply.code(201).send({ user })
    },
  )

  app.get(
    '/keys',
    { schema: { ...doc('Virtual keys (never the key itself)'), response: responses(keysResponse) } },
    async () => ({ keys: store.keys().map((k) => publicKey(k)) }),
  )
  app.post(
    '/keys',
    {
      schema: {
        ...doc('Create a virtual key (its plaintext is in this answer only)'),
        body: keyBody,
        response: created(keyCreatedResponse),
      },
    },
    async (request, reply) => {
      const b = request.body
      knownUser(b.userId)
      const expiresAt = b.expiresAt ? new Date(b.expiresAt) : null
      if (expiresAt && expiresAt.getTime() <= Date.now()) {
        throw new HttpError(400, 'invalid_body', 'Invalid key: expiresAt must be in the future.')
      }
      knownModels(b.allowedModels ?? [])
      const { key, plaintext } = await store.createKey({
        userId: b.userId,
        name: b.name,
        allowedModels: b.allowedModels ?? [],
        expiresAt,
      })
      return reply.code(201).send({ key: publicKey(key), plaintext })
    },
  )
  app.patch(
    '/keys/:keyId',
    {
      schema: {
        ...doc("Change a live key's allowed models (an empty list allows every model)"),
        params: keyIdParams,
        body: keyChangeBody,
        response: { ...responses(keyResponse), 404: noKey },
      },
    },
    async (request) => {
      const key = knownKey(request.params.keyId)
      const { allowedModels } = request.body
      knownModels(allowedModels)
      return { key: publicKey(await store.setAllowedModels(key.keyId, allowedModels)) }
    },
  )
  app.post(
    '/keys/:keyId/revoke',
    {
      schema: {
        ...doc('Revoke a key (or end the session made from a sign-in token)'),
        params: keyIdParams,
        response: { ...responses(keyResponse), 404: noKey },
      },
    },
    async (request) => {
      const found = store.key(request.params.keyId)
      // A sign-in token (its id is the tokenId of POST /signin-tokens and the
      // sourceId of its session) is already revoked once exchanged: revoking it
      // again ends the session made from it.
      const key = found?.kind === 'signin' ? found : knownKey(request.params.keyId)
      const revoked = key.revokedAt && key.kind === 'key' ? key : await store.revokeKey(key.keyId)
      return { key: publicKey(revoked) }
    },
  )
  app.post(
    '/keys/:keyId/rotate',
    {
      schema: {
        ...doc('Replace a key; the old one keeps working for graceSeconds'),
        params: keyIdParams,
        body: rotateBody,
        response: {
          ...created(keyRotatedResponse),
          404: noKey,
          409: refusal('The key is revoked'),
        },
      },
    },
    async (request, reply) => {
      const key = knownKey(request.params.keyId)
      if (key.revokedAt)
        throw new HttpError(409, 'key_revoked', `Key ${key.keyId} is revoked; create a new key instead.`)
      const grace = request.body.graceSeconds * 1000
      const { key: fresh, plaintext, old } = await store.rotateKey(key.keyId, grace)
      return reply.code(201).send({ key: publicKey(fresh), plaintext, old: publicKey(old) })
    },
  )

  app.get(
    '/models',
    { schema: { ...doc('Model facades and their prices'), response: responses(modelsResponse) } },
    async () => ({ models: store.models().sort((a, b) => a.model.localeCompare(b.model)) }),
  )
  app.put(
    '/models/:model',
    {
      schema: {
        ...doc('Create or replace a model facade (USD per million tokens)'),
        params: modelParams,
        body: modelBody,
        response: responses(modelResponse),
      },
    },
    async (request) => {
      const b = request.body
      const model = {
        ...b,
        model: request.params.model,
        inputPerM: b.inputPerM ?? 0,
        outputPerM: b.outputPerM ?? 0,
        priceFromCatalogue: b.priceFromCatalogue ?? false,
      }
      return { model: await store.upsertModel(model) }
    },
  )
  app.delete(
    '/models/:model',
    {
      schema: {
        ...doc('Delete a model facade'),
        params: modelParams,
        response: { ...deleted, 404: refusal('No such facade') },
      },
    },
    async (request, reply) => {
      if (!store.model(request.params.model)) {
        throw new HttpError(
          404,
          'not_found',
          `No model facade ${request.params.model}; see GET /api/admin/models.`,
        )
      }
      await store.deleteModel(request.params.model)
      return reply.code(204).send(undefined)
    },
  )

  app.post(
    '/signin-tokens',
    {
      schema: {
        ...doc('A one-time web sign-in token for a user (valid 10 minutes)'),
        body: signinTokenBody,
        response: created(signinTokenResponse),
      },
    },
    async (request, reply) => {
      const { userId } = request.body
      knownUser(userId)
      const expiresAt = new Date(Date.now() + SIGNIN_TOKEN_TTL_MS)
      const { key, plaintext } = await store.createKey({
        userId,
        name: 'web sign-in',
        kind: 'signin',
        expiresAt,
      })
      return reply
        .code(201)
        .send({ token: plaintext, tokenId: key.keyId, expiresAt: expiresAt.toISOString() })
    },
  )

  app.get(
    '/sessions',
    { schema: { ...doc('Web sessions, newest first'), response: responses(sessionsResponse) } },
    async () => ({
      sessions: store
        .sessions()
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
        .map((s) =>
          publicSession(
            s,
            sessionStatus(s, store, core.adminToken),
            s.userId ? (store.user(s.userId)?.name ?? s.userId) : 'Admin token',
          ),
        ),
    }),
  )
  app.delete(
    '/sessions/:sessionId',
    {
      schema: {
        ...doc('End a web session'),
        params: sessionIdParams,
        response: { ...responses(sessionResponse), 404: refusal('No such session') },
      },
    },
    async (request) => {
      const ended = await store.endSession(request.params.sessionId, 'ended by an admin')
      if (!ended) {
        throw new HttpError(
          404,
          'not_found',
          `No session ${request.params.sessionId}; see GET /api/admin/sessions.`,
        )
      }
      return {
        session: publicSession(
          ended,
          sessionStatus(ended, store, core.adminToken),
          ended.userId || 'Admin token',
        ),
      }
    },
  )
}
