import { createHmac, randomBytes } from 'node:crypto'
import cookie from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { bearerToken, type Principal, principalFromBearer, safeEqual } from '../core/auth.ts'
import type { Core } from '../core/core.ts'
import type { Role } from '../core/entities.ts'
import { HttpError } from '../core/errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

export const SESSION_COOKIE = 'tm_session'
const SESSION_TTL_MS = 12 * 60 * 60 * 1000

/**
 * Sessions are signed cookies (HMAC-SHA256 with SESSION_SECRET), so any
 * instance can check them without shared state. The cookie names a credential
 * (a key id, or the admin token marker), never the secret itself, and the
 * credential is re-validated on every request: revoking the key ends the session.
 */
export function createSessionCodec(secret: string) {
  const sign = (payload: string) => createHmac('sha256', secret).update(payload).digest('base64url')
  return {
    encode(credentialId: string, now = Date.now()): string {
      const payload = Buffer.from(JSON.stringify({ c: credentialId, e: now + SESSION_TTL_MS })).toString(
        'base64url',
      )
      return `${payload}.${sign(payload)}`
    },
    decode(value: string, now = Date.now()): string | undefined {
      const [payload, mac] = value.split('.')
      if (!payload || !mac || !safeEqual(mac, sign(payload))) return undefined
      const { c, e } = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { c: string; e: number }
      return e > now ? c : undefined
    },
  }
}

export type SessionCodec = ReturnType<typeof createSessionCodec>

/** Resolves who is calling from a bearer credential or the session cookie; undefined if nobody valid. */
export function resolvePrincipal(
  core: Core,
  sessions: SessionCodec,
  headers: Record<string, string | string[] | undefined>,
  cookies: Record<string, string | undefined>,
): Principal | undefined {
  const token = bearerToken(headers)
  if (token) return principalFromBearer(token, core.store, core.adminToken)
  const raw = cookies[SESSION_COOKIE]
  let credentialId: string | undefined
  try {
    credentialId = raw ? sessions.decode(raw) : undefined
  } catch {
    credentialId = undefined
  }
  return credentialId ? principalFromCredential(core, credentialId, 'session') : undefined
}

/**
 * A session credential back to a principal, re-validated against the store
 * every time (the WebSocket re-runs it while open). Credentials: 'admin-token',
 * a virtual key id, or `signin:<keyId>:<consumedAtMs>` for an exchanged
 * one-time sign-in token: exchanging revokes the token at consumedAtMs, and
 * revoking it again (a new revokedAt) ends every session made from it.
 */
export function principalFromCredential(
  core: Core,
  credentialId: string,
  via: Principal['via'],
): Principal | undefined {
  if (credentialId === 'admin-token') {
    return { role: 'admin', userId: '', teamId: '', via, credentialId }
  }
  const now = new Date()
  const signin = /^signin:(.+):(\d+)$/.exec(credentialId)
  const key = core.store.key(signin ? signin[1]! : credentialId)
  const user = key && core.store.user(key.userId)
  if (!key || !user) return undefined
  if (signin) {
    if (key.kind !== 'signin' || key.revokedAt?.getTime() !== Number(signin[2])) return undefined
  } else if (
    key.kind !== 'key' ||
    (key.revokedAt && key.revokedAt <= now) ||
    (key.expiresAt && key.expiresAt <= now)
  ) {
    return undefined
  }
  return { role: user.role, userId: user.userId, teamId: user.teamId, via, credentialId }
}

/** Browsers send Origin on WebSocket handshakes; it must be ours or explicitly allowed (ALLOWED_ORIGINS). */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: string,
): boolean {
  if (!origin) return true // not a browser: nothing to forge a cookie with
  const list = allowed
    .split(',')
    .map((o) => o.trim().replace(/\/$/, ''))
    .filter(Boolean)
  if (list.includes(origin)) return true
  try {
    return new URL(origin).host === host
  } catch {
    return false
  }
}

/** Registers cookie parsing and `request.principal` for every /api route. */
export const authPlugin = fp<{ core: Core }>(
  async (app, { core }) => {
    const sessions = createSessionCodec(core.env.SESSION_SECRET ?? randomBytes(32).toString('hex'))
    await app.register(cookie)
    app.decorate('sessions', sessions)
    app.addHook('onRequest', async (request) => {
      request.principal = resolvePrincipal(core, sessions, request.headers, request.cookies)
    })
  },
  { name: 'tokenmeter-auth' },
)

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionCodec
  }
}

/** preHandler: 401 without a valid credential, 403 when the role is not allowed. */
export function requireRole(...roles: Role[]) {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const p = request.principal
    if (!p) {
      throw new HttpError(
        401,
        'unauthenticated',
        'Sign in first: send Authorization: Bearer <key or admin token>, or POST /api/session.',
      )
    }
    if (roles.length > 0 && !roles.includes(p.role)) {
      throw new HttpError(403, 'forbidden', `This needs the ${roles.join(' or ')} role; you are ${p.role}.`)
    }
  }
}
