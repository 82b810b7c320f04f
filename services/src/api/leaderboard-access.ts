import type { LeaderboardVisibility } from '@tokenmeter/contract'
import { HttpError } from '../core/errors/http-error.ts'
import type { Principal } from '../core/identity/auth.ts'
import type { Scope } from './filters.ts'

export type Ranked = 'network' | 'team' | 'own'

/**
 * Whose usage a leaderboard ranks for this caller, under the admin's
 * visibility setting (settings.schema.ts in the contract). Users and teams
 * are ranked network-wide by default, as people expect of a leaderboard;
 * keys never beyond what the caller may see (a key's name says whose it is
 * and what for), and admins always see everything.
 */
export function leaderboardRanking(
  principal: Principal,
  own: Scope,
  by: 'user' | 'team' | 'key',
  visibility: LeaderboardVisibility,
): { scope: Scope; ranked: Ranked } {
  if (own.kind === 'all') return { scope: own, ranked: 'network' }
  if (visibility === 'admins') {
    throw new HttpError(
      403,
      'leaderboard_restricted',
      'An admin has limited the leaderboard to admins; your own usage is on the Dashboard.',
    )
  }
  if (by === 'key') return { scope: own, ranked: own.kind === 'team' ? 'team' : 'own' }
  if (visibility === 'team') return { scope: { kind: 'team', teamId: principal.teamId }, ranked: 'team' }
  return { scope: { kind: 'all' }, ranked: 'network' }
}
