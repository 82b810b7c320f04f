import { createHash } from 'node:crypto'
import type { AdminStore } from './admin-store.ts'
import type { Session } from './entities.ts'

/**
 * Which ADMIN_TOKEN a session was made with, without keeping the token: a
 * rotated token gives another fingerprint, so its old sessions stop working.
 */
export function adminTokenFingerprint(token: string): string {
  return createHash('sha256').update(`tokenmeter-admin-session:${token}`).digest('hex').slice(0, 32)
}

export type SessionStatus = { ok: true } | { ok: false; reason: string }

/**
 * Whether a session may still act, checked on every request and every few
 * seconds on an open WebSocket: the record must be live and what it came from
 * must still stand with the same role and team.
 */
export function sessionStatus(
  session: Session,
  store: AdminStore,
  adminToken: string,
  now = new Date(),
): SessionStatus {
  if (session.endedAt) return { ok: false, reason: session.endReason || 'ended' }
  if (session.expiresAt <= now) return { ok: false, reason: 'expired' }
  if (session.source === 'admin-token') {
    return session.sourceId === adminTokenFingerprint(adminToken)
      ? { ok: true }
      : { ok: false, reason: 'admin token rotated' }
  }
  const key = store.key(session.sourceId)
  if (!key) return { ok: false, reason: 'credential removed' }
  if (session.source === 'key') {
    if (key.kind !== 'key') return { ok: false, reason: 'credential removed' }
    if (key.revokedAt && key.revokedAt <= now) return { ok: false, reason: 'key revoked' }
    if (key.expiresAt && key.expiresAt <= now) return { ok: false, reason: 'key expired' }
  }
  const user = store.user(session.userId)
  if (!user) return { ok: false, reason: 'user removed' }
  if (user.role !== session.role || user.teamId !== session.teamId) {
    return { ok: false, reason: 'role or team changed' }
  }
  return { ok: true }
}
