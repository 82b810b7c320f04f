import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import {
  type ApiKey,
  BUILTIN_PROVIDERS,
  modelFacadeSchema,
  roleSchema,
  type Session,
} from '../core/identity/entities.ts'
import { newId } from '../core/identity/keys.ts'
import { sessionStatus } from '../core/identity/session-validity.ts'
import { requireRole } from './auth.plugin.ts'
import { parseInput } from './input-errors.ts'

/** How long a one-time web sign-in token stays valid. */
const SIGNIN_TOKEN_TTL_MS = 10 * 60 * 1000
const MAX_GRACE_SECONDS = 30 * 24 * 3600

const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : -')

const teamBody = z.strictObject({ teamId: id.optional(), name: z.string().trim().min(1).max(200) })
const userBody = z.strictObject({
  userId: id.optional(),
  email: z.email().max(320),
  name: z.string().trim().min(1).max(200),
  teamId: id,
  role: roleSchema.default('member'),
})
const keyBody = z.strictObject({
  userId: id,
  name: z.string().trim().min(1).max(200),
  /** Model names or patterns with `*` (`claude-*`, `gpt-4o*`), matched on the name clients send. */
  allowedModels: z
    .array(
      z
        .string()
        .min(1)
        .max(128)
        .regex(/^[A-Za-z0-9._:/*-]+$/, 'use model names or patterns of letters, digits, . _ : / - and *'),
    )
    .max(200)
    .optional(),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
})
/** What may change on a live key without issuing a new one; an empty list allows every model. */
const keyChangeBody = z.strictObject({ allowedModels: keyBody.shape.allowedModels.unwrap() })
const rotateBody = z.strictObject({
  graceSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).default(3600),
})
/**
 * A facade either prices its model (inputPerM and outputPerM) or only aliases
 * it (`priceFromCatalogue: true`, prices omitted): then the upstream model is
 * priced from the catalogue like a model without a facade.
 */
const modelBodySchema = (providers: readonly string[]) =>
  modelFacadeSchema
    .omit({ model: true })
    .extend({
      provider: modelFacadeSchema.shape.provider.refine((p) => providers.includes(p), {
        message: `not configured; use one of ${providers.join(', ')} (named upstreams come from UPSTREAMS)`,
      }),
      inputPerM: modelFacadeSchema.shape.inputPerM.optional(),
      outputPerM: modelFacadeSchema.shape.outputPerM.optional(),
    })
    .strict()
    .refine((b) => b.priceFromCatalogue || (b.inputPerM !== undefined && b.outputPerM !== undefined), {
      message:
        'give inputPerM and outputPerM, or priceFromCatalogue: true to price the upstream model from the catalogue',
    })
const modelName = modelFacadeSchema.shape.model
const signinBody = z.strictObject({ userId: id })

const parse = <T extends z.ZodType>(schema: T, value: unknown, what: string) =>
  parseInput(schema, value, 'body', what)

/** A key as the API shows it: never the hash, only the prefix. */
function publicKey(k: ApiKey, now = new Date()) {
  const status =
    k.revokedAt && k.revokedAt <= now ? 'revoked' : k.expiresAt && k.expiresAt <= now ? 'expired' : 'active'
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
    status,
  }
}

/** A session as the admin list shows it; `status` is the same rule every request is checked with. */
function publicSession(s: Session, status: ReturnType<typeof sessionStatus>, who: string) {
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
 */
export const adminRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const modelBody = modelBodySchema([...BUILTIN_PROVIDERS, ...core.env.namedUpstreams.map((u) => u.name)])
  const { store } = core
  app.addHook('preHandler', requireRole('admin'))

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

  app.get('/teams', async () => ({ teams: store.teams() }))
  app.post('/teams', async (request, reply) => {
    const b = parse(teamBody, request.body, 'team')
    const team = await store.upsertTeam({ teamId: b.teamId ?? newId('team'), name: b.name })
    return reply.code(201).send({ team })
  })

  app.get('/users', async () => ({ users: store.users() }))
  app.post('/users', async (request, reply) => {
    const b = parse(userBody, request.body, 'user')
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
  })

  app.get('/keys', async () => ({ keys: store.keys().map((k) => publicKey(k)) }))
  app.post('/keys', async (request, reply) => {
    const b = parse(keyBody, request.body, 'key')
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
  })
  app.patch<{ Params: { keyId: string } }>('/keys/:keyId', async (request) => {
    const key = knownKey(request.params.keyId)
    const b = parse(keyChangeBody, request.body, 'key change')
    knownModels(b.allowedModels)
    return { key: publicKey(await store.setAllowedModels(key.keyId, b.allowedModels)) }
  })
  app.post<{ Params: { keyId: string } }>('/keys/:keyId/revoke', async (request) => {
    const found = store.key(request.params.keyId)
    // A sign-in token (its id is the tokenId of POST /signin-tokens and the
    // sourceId of its session) is already revoked once exchanged: revoking it
    // again ends the session made from it.
    const key = found?.kind === 'signin' ? found : knownKey(request.params.keyId)
    const revoked = key.revokedAt && key.kind === 'key' ? key : await store.revokeKey(key.keyId)
    return { key: publicKey(revoked) }
  })
  app.post<{ Params: { keyId: string } }>('/keys/:keyId/rotate', async (request, reply) => {
    const key = knownKey(request.params.keyId)
    const b = parse(rotateBody, request.body, 'rotation')
    if (key.revokedAt)
      throw new HttpError(409, 'key_revoked', `Key ${key.keyId} is revoked; create a new key instead.`)
    const { key: fresh, plaintext, old } = await store.rotateKey(key.keyId, b.graceSeconds * 1000)
    return reply.code(201).send({ key: publicKey(fresh), plaintext, old: publicKey(old) })
  })

  app.get('/models', async () => ({
    models: store.models().sort((a, b) => a.model.localeCompare(b.model)),
  }))
  app.put<{ Params: { model: string } }>('/models/:model', async (request) => {
    const name = modelName.safeParse(request.params.model)
    if (!name.success) {
      throw new HttpError(400, 'invalid_model_name', `Invalid model name: ${name.error.issues[0]?.message}.`)
    }
    const b = parse(modelBody, request.body, 'model facade')
    const model = {
      ...b,
      model: name.data,
      inputPerM: b.inputPerM ?? 0,
      outputPerM: b.outputPerM ?? 0,
      priceFromCatalogue: b.priceFromCatalogue ?? false,
    }
    return { model: await store.upsertModel(model) }
  })
  app.delete<{ Params: { model: string } }>('/models/:model', async (request, reply) => {
    if (!store.model(request.params.model)) {
      throw new HttpError(
        404,
        'not_found',
        `No model facade ${request.params.model}; see GET /api/admin/models.`,
      )
    }
    await store.deleteModel(request.params.model)
    return reply.code(204).send()
  })

  app.post('/signin-tokens', async (request, reply) => {
    const b = parse(signinBody, request.body, 'sign-in token request')
    knownUser(b.userId)
    const expiresAt = new Date(Date.now() + SIGNIN_TOKEN_TTL_MS)
    const { key, plaintext } = await store.createKey({
      userId: b.userId,
      name: 'web sign-in',
      kind: 'signin',
      expiresAt,
    })
    return reply.code(201).send({ token: plaintext, tokenId: key.keyId, expiresAt: expiresAt.toISOString() })
  })

  app.get('/sessions', async () => ({
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
  }))
  app.delete<{ Params: { sessionId: string } }>('/sessions/:sessionId', async (request) => {
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
  })
}
