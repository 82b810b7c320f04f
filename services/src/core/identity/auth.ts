import { timingSafeEqual } from 'node:crypto'
import type { AdminStore } from './admin-store.ts'
import type { Role } from './entities.ts'
import { adminTokenFingerprint } from './session-validity.ts'

/**
 * Who is calling the API. Scoping is derived from this on the server for every
 * query: members see their own keys, leads their team, admins everything.
 */
export interface Principal {
  role: Role
  /** Empty for the bootstrap admin token. */
  userId: string
  teamId: string
  /** How the caller proved who they are; the WebSocket re-checks it while open. */
  via: 'admin-token' | 'api-key' | 'session'
  /** The credential to re-validate: `admin-token:<fingerprint>`, a key id or a session id. */
  credentialId: string
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a)
  const bb = Buffer.from(b)
  return ab.length === bb.length && timingSafeEqual(ab, bb)
}

export function bearerToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization
  if (typeof auth === 'string' && auth.toLowerCase().startsWith('bearer ')) return auth.slice(7).trim()
  const xKey = headers['x-api-key']
  return typeof xKey === 'string' ? xKey.trim() : undefined
}

/** The credential id of a caller holding ADMIN_TOKEN: re-checked while a WebSocket stays open. */
export const adminCredential = (adminToken: string) => `admin-token:${adminTokenFingerprint(adminToken)}`

/**
 * Resolves a bearer credential: the bootstrap ADMIN_TOKEN or a virtual key.
 * A web sign-in token is not a bearer credential: it is only exchanged once
 * for a session (POST /api/session).
 */
export function principalFromBearer(
  token: string,
  store: AdminStore,
  adminToken: string,
): Principal | undefined {
  if (safeEqual(token, adminToken)) {
    return {
      role: 'admin',
      userId: '',
      teamId: '',
      via: 'admin-token',
      credentialId: adminCredential(adminToken),
    }
  }
  const auth = store.authenticate(token)
  if ('error' in auth || auth.key.kind !== 'key') return undefined
  return {
    role: auth.user.role,
    userId: auth.user.userId,
    teamId: auth.user.teamId,
    via: 'api-key',
    credentialId: auth.key.keyId,
  }
}
