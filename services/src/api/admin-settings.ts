import { type AdminSettings, adminSettings, SETTING_DEFAULTS } from '@tokenmeter/contract'
import type { AdminStore } from '../core/identity/admin-store.ts'

/** The settings table's `name` of each setting (snake_case, like every stored name). */
const STORED_AS: Record<keyof AdminSettings, string> = {
  leaderboardVisibility: 'leaderboard_visibility',
}

/**
 * What a stored value this release cannot read counts as (one written by a
 * newer release, say): the most restrictive choice, so that an unknown value
 * never shows more than an admin allowed.
 */
const UNREADABLE: AdminSettings = { leaderboardVisibility: 'admins' }

const fields = Object.keys(STORED_AS) as (keyof AdminSettings)[]

/** The settings in force: stored values, else the defaults (SETTING_DEFAULTS in the contract). */
export function readSettings(store: AdminStore): AdminSettings {
  const out: AdminSettings = { ...SETTING_DEFAULTS }
  for (const field of fields) {
    const raw = store.setting(STORED_AS[field])
    if (raw === undefined) continue
    const parsed = adminSettings.shape[field].safeParse(raw)
    out[field] = parsed.success ? parsed.data : UNREADABLE[field]
  }
  return out
}

/** Stores the given settings (already checked by the route's schema); the others keep their value. */
export async function writeSettings(
  store: AdminStore,
  change: Partial<AdminSettings>,
): Promise<AdminSettings> {
  for (const field of fields) {
    const value = change[field]
    if (value !== undefined) await store.putSetting(STORED_AS[field], value)
  }
  return readSettings(store)
}
