import { randomBytes } from 'node:crypto'
import { errorResponse, meResponse, sessionBody } from '@tokenmeter/contract'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { safeEqual } from '../core/identity/auth.ts'
import type { Session } from '../core/identity/entities.ts'
import { adminTokenFingerprint } from '../core/identity/session-validity.ts'
import { SESSION_COOKIE } from './auth.plugin.ts'
import { responses } from './route-schemas.ts'

const SESSION_MAX_AGE_S = 12 * 60 * 60

/** What /api/me answers for a principal. */
function describePrincipal(core: Core, request: FastifyRequest) {
  const p = request.principal
  if (!p) {
    throw new HttpError(
      401,
      'unauthenticated',
      'Sign in first: POST /api/session { token } or send a bearer key.',
    )
  }
  const user = p.userId ? core.store.user(p.userId) : undefined
  return {
    role: p.role,
    userId: p.userId,
    teamId: p.teamId,
    name: user?.name ?? (p.role === 'admin' ? 'Admin' : p.userId),
    email: user?.email ?? '',
    via: p.via,
  }
}

/**
 * Web sign-in: a virtual key, an admin-issued one-time sign-in token or
 * ADMIN_TOKEN is exchanged for a server-side session (admin store, shared by
 * every instance) and a signed, httpOnly, SameSite=Lax cookie naming only the
 * session id. Sign-out ends the session itself, not just the cookie.
 */
export const sessionRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const tags = ['session']
  // A sign-in token is exchanged once; this guards this instance's window
  // before its revocation lands (other instances: exchangeSignin).
  const exchanging = new Set<string>()

  // Guessing tokens is slow: a few sign-ins per address per minute.
  const signinLimit = { rateLimit: { max: core.env.SIGNIN_ATTEMPTS_PER_MIN, timeWindow: 60_000 } }
  const signinSchema = {
    tags,
    summary: 'Exchange a virtual key, a one-time sign-in token or ADMIN_TOKEN for the tm_session cookie',
    security: [],
    body: sessionBody,
    response: { 200: meResponse, 400: errorResponse, 401: errorResponse, 429: errorResponse },
  }
  app.post('/session', { config: signinLimit, schema: signinSchema }, async (request, reply) => {
    const { token } = request.body
    const createdAt = new Date()
    const expiresAt = new Date(createdAt.getTime() + SESSION_MAX_AGE_S * 1000)
    // 192 random bits: the id is the bearer secret of the cookie (signed on top).
    const sessionId = `sess_${randomBytes(24).toString('base64url')}`
    let session: Session | undefined
    if (safeEqual(token, core.adminToken)) {
      session = await core.store.createSession({
        sessionId,
        userId: '',
        teamId: '',
        role: 'admin',
        source: 'admin-token',
        sourceId: adminTokenFingerprint(core.adminToken),
        createdAt,
        expiresAt,
      })
    } else {
      const auth = core.store.authenticate(token)
      if ('error' in auth) {
        throw new HttpError(401, 'invalid_token', `That token is ${auth.error}; ask an admin for a new one.`)
      }
      const who = { sessionId, userId: auth.user.userId, teamId: auth.user.teamId, role: auth.user.role }
      if (auth.key.kind === 'signin') {
        if (exchanging.has(auth.key.keyId))
          throw new HttpError(401, 'invalid_token', 'That token is already used; ask an admin for a new one.')
        exchanging.add(auth.key.keyId)
        try {
          session = await core.store.exchangeSignin(auth.key.keyId, { ...who, createdAt, expiresAt })
        } finally {
          exchanging.delete(auth.key.keyId)
        }
        if (!session)
          throw new HttpError(401, 'invalid_token', 'That token is already used; ask an admin for a new one.')
      } else {
        session = await core.store.createSession({
          ...who,
          source: 'key',
          sourceId: auth.key.keyId,
          createdAt,
          expiresAt,
        })
      }
    }
    reply.setCookie(SESSION_COOKIE, app.sessions.encode(session.sessionId), {
      httpOnly: true,
      sameSite: 'lax',
      // With TRUST_PROXY set, request.protocol follows X-Forwarded-Proto from the TLS proxy.
      secure: request.protocol === 'https',
      path: '/',
      maxAge: SESSION_MAX_AGE_S,
    })
    request.principal = {
      role: session.role,
      userId: session.userId,
      teamId: session.teamId,
      via: 'session',
      credentialId: session.sessionId,
    }
    return describePrincipal(core, request)
  })

  const signoutSchema = {
    tags,
    summary: 'Sign out (ends the session, clears the cookie)',
    security: [],
    response: { 200: z.object({ ok: z.literal(true) }) },
  }
  app.delete('/session', { schema: signoutSchema }, async (request, reply) => {
    const p = request.principal
    if (p?.via === 'session') await core.store.endSession(p.credentialId, 'signed out')
    reply.clearCookie(SESSION_COOKIE, { path: '/' })
    return { ok: true as const }
  })

  const meSchema = { tags, summary: 'Who is signed in', response: responses(meResponse) }
  app.get('/me', { schema: meSchema }, async (request) => describePrincipal(core, request))
}
