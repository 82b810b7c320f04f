import { errorResponse, meResponse, sessionBody } from '@tokenmeter/contract'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { safeEqual } from '../core/auth.ts'
import type { Core } from '../core/core.ts'
import { HttpError } from '../core/errors.ts'
import { SESSION_COOKIE } from './auth.plugin.ts'
import { responses } from './route-schemas.ts'

const SESSION_MAX_AGE_S = 12 * 60 * 60

/** What /api/me answers for a principal. */
export function describePrincipal(core: Core, request: FastifyRequest) {
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
 * ADMIN_TOKEN is exchanged for a signed, httpOnly, SameSite=Lax cookie that
 * names the credential (never the secret), so revoking the credential ends
 * the session.
 */
export const sessionRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const tags = ['session']
  // A sign-in token is exchanged once; this guards the window before the revocation lands.
  const exchanging = new Set<string>()

  app.post(
    '/session',
    {
      schema: {
        tags,
        summary: 'Exchange a virtual key, a one-time sign-in token or ADMIN_TOKEN for the tm_session cookie',
        security: [],
        body: sessionBody,
        response: { 200: meResponse, 400: errorResponse, 401: errorResponse },
      },
    },
    async (request, reply) => {
      const { token } = request.body
      let credentialId: string
      let who: { role: 'admin' | 'lead' | 'member'; userId: string; teamId: string } = {
        role: 'admin',
        userId: '',
        teamId: '',
      }
      if (safeEqual(token, core.adminToken)) {
        credentialId = 'admin-token'
      } else {
        const auth = core.store.authenticate(token)
        if ('error' in auth) {
          throw new HttpError(
            401,
            'invalid_token',
            `That token is ${auth.error}; ask an admin for a new one.`,
          )
        }
        who = { role: auth.user.role, userId: auth.user.userId, teamId: auth.user.teamId }
        if (auth.key.kind === 'signin') {
          if (exchanging.has(auth.key.keyId))
            throw new HttpError(401, 'invalid_token', 'That token is already used.')
          exchanging.add(auth.key.keyId)
          try {
            const consumedAt = new Date()
            await core.store.revokeKey(auth.key.keyId, consumedAt)
            credentialId = `signin:${auth.key.keyId}:${consumedAt.getTime()}`
          } finally {
            exchanging.delete(auth.key.keyId)
          }
        } else {
          credentialId = auth.key.keyId
        }
      }
      reply.setCookie(SESSION_COOKIE, app.sessions.encode(credentialId), {
        httpOnly: true,
        sameSite: 'lax',
        secure: request.protocol === 'https',
        path: '/',
        maxAge: SESSION_MAX_AGE_S,
      })
      request.principal = { ...who, via: 'session', credentialId }
      return describePrincipal(core, request)
    },
  )

  app.delete(
    '/session',
    {
      schema: {
        tags,
        summary: 'Sign out (clears the cookie)',
        security: [],
        response: { 200: z.object({ ok: z.literal(true) }) },
      },
    },
    async (_request, reply) => {
      reply.clearCookie(SESSION_COOKIE, { path: '/' })
      return { ok: true as const }
    },
  )

  app.get(
    '/me',
    { schema: { tags, summary: 'Who is signed in', response: responses(meResponse) } },
    async (request) => describePrincipal(core, request),
  )
}
