import type { Role } from '@tokenmeter/contract'

// Shapes of admin state. Those the API shows (role, team, user, model facade,
// budget) are zod schemas in the contract (packages/contract/src/admin-api.schema.ts),
// shared by the store, the admin API and the web; the two below stay on the server.
export type { Budget, ModelFacade, Provider, Role, Team, User } from '@tokenmeter/contract'

export interface ApiKey {
  keyId: string
  keyHash: string
  keyPrefix: string
  name: string
  userId: string
  teamId: string
  allowedModels: string[]
  createdAt: Date
  expiresAt: Date | null
  revokedAt: Date | null
  kind: 'key' | 'signin'
  /**
   * The key id its key-scoped budgets are set on, when not its own: a rotated
   * key inherits it from the key it replaced, so a cap and the period's spend
   * survive rotation (unset: the key's own id).
   */
  budgetKeyId?: string
}

/**
 * A web session: the cookie names only `sessionId`. It ends on sign-out, when
 * an admin ends it, or when what it came from is revoked, rotated or changed.
 */
export interface Session {
  sessionId: string
  /** Empty for a session made with ADMIN_TOKEN. */
  userId: string
  teamId: string
  role: Role
  source: 'admin-token' | 'key' | 'signin'
  /** The key or sign-in token id; for 'admin-token' a fingerprint of the token (never the token). */
  sourceId: string
  createdAt: Date
  expiresAt: Date
  endedAt: Date | null
  endReason: string
}
