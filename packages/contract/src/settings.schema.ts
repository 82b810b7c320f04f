import { z } from 'zod'

/**
 * Organisation-wide settings an admin changes on the Settings page
 * (`GET` / `PUT /api/admin/settings`), stored in ClickHouse with the other
 * admin tables.
 *
 * leaderboardVisibility: who sees the leaderboard beyond their own usage.
 * - everyone (default): users and teams ranked network-wide for every role;
 *   keys only within what the caller may see (their own, or their team's for a lead)
 * - team: leads and members see their own team ranked (keys as above)
 * - admins: only admins; everyone else gets 403 leaderboard_restricted
 */
export const leaderboardVisibility = z.enum(['everyone', 'team', 'admins'])
export type LeaderboardVisibility = z.infer<typeof leaderboardVisibility>

export const adminSettings = z.object({ leaderboardVisibility })
export type AdminSettings = z.infer<typeof adminSettings>
export const adminSettingsBody = adminSettings.partial().strict()
export const adminSettingsResponse = z.object({ settings: adminSettings })
export const SETTING_DEFAULTS: AdminSettings = { leaderboardVisibility: 'everyone' }
