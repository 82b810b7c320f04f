import { createHmac, randomBytes } from 'node:crypto'
import cookie from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import {
  adminCredential,
  bearerToken,
  type Principal,
  principalFromBearer,
  safeEqual,
} from '../core/identity/auth.ts'
import type { Role } from '../core/identity/entities.ts'
import { sessionStatus } from '../core/identity/session-validity.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

export const SESSION_COOKIE = 'tm_session'

/**
 * The cookie is `<sessionId>.<HMAC-SHA256 with SESSION_SECRET>`: the signature
 * keeps forged or guessed ids from ever reaching the store; the session record
 * (admin store, shared by every instance) decides whether it still works.
 */
function createSessionCodec(secret: string) {
  const sign = (payload: string) => createHmac('sha256', secret).update(payload).digest('base64url')
  return {
    encode(sessionId: string): string {
      return `${sessionId}.${sign(sessionId)}`
    },
    decode(value: string): string | undefined {
      const [id, mac, extra] = value.split('.')
      if (!id || !mac || extra !== undefined || !safeEqual(mac, sign(id))) return undefined
      return id
    },
  }
}

export type SessionCodec = ReturnType<typeof createSessionCodec>

/** Resolves who is calling from a bearer credential or the session cookie; undefined if nobody valid. */
async function resolvePrincipal(
  core: Core,
  sessions: SessionCodec,
  headers: Record<string, string | string[] | undefined>,
  cookies: Record<string, string | undefined>,
): Promise<Principal | undefined> {
  const token = bearerToken(headers)
  if (token) return principalFromBearer(token, core.store, core.adminToken)
  const raw = cookies[SESSION_COOKIE]
  const sessionId = raw ? sessions.decode(raw) : undefined
  if (!sessionId) return undefined
  // A session made on another instance since the last refresh is read once.
  await core.store.loadSession(sessionId)
  return principalFromCredential(core, sessionId, 'session')
}

/**
 * A credential back to a principal, re-validated against the store every time
 * (the WebSocket re-runs it while open): `admin-token:<fingerprint>` holds
 * while ADMIN_TOKEN is unchanged, a key id while the key is live, a session id
 * while the session is (session-validity.ts).
 */
export function principalFromCredential(
  core: Core,
  credentialId: string,
  via: Principal['via'],
): Principal | undefined {
  if (via === 'admin-token') {
    return credentialId === adminCredential(core.adminToken)
      ? { role: 'admin', userId: '', teamId: '', via, credentialId }
      : undefined
  }
  if (via === 'session') {
    const session = core.store.session(credentialId)
    if (!session || !sessionStatus(session, core.store, core.adminToken).ok) return undefined
    return { role: session.role, userId: session.userId, teamId: session.teamId, via, credentialId }
  }
  const now = new Date()
  const key = core.store.key(credentialId)
  const user = key && core.store.user(key.userId)
  if (
    !key ||
    !user ||
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
    // Not a URL: not an origin we could allow (the caller answers 403).
    return false
  }
}

/** Registers cookie parsing and `request.principal` for every /api route. */
export const authPlugin = fp<{ core: Core }>(
  async (app, { core }) => {
    const sessions = createSessionCodec(core.env.SESSION_SECRET ?? randomBytes(32).toString('hex'))
    await app.register(cookie)
    app.decorate('sessions', sessions)
    // Failed authentications (any 401 under /api) count per address; past the
    // limit, calls from it without a valid credential (guesses, sign-in
    // attempts) are refused for the rest of the minute. A valid credential is
    // never refused, so a colleague behind the same NAT is not locked out.
    const failures = app.createRateLimit({ max: core.env.API_AUTH_FAILURES_PER_MIN, timeWindow: 60_000 })
    app.addHook('onRequest', async (request) => {
      request.principal = await resolvePrincipal(core, sessions, request.headers, request.cookies)
      if (request.principal) return
      const seen = await failures(request, { increment: false })
      if (!seen.isAllowed && seen.remaining <= 0) {
        throw new HttpError(
          429,
          'rate_limited',
          `Too many failed sign-ins from this address; wait ${seen.ttlInSeconds} s and check your token.`,
        )
      }
    })
    app.addHook('onResponse', async (request, reply) => {
      if (reply.statusCode === 401) await failures(request)
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
