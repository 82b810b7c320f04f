import { goto } from '$app/navigation'
import { page } from '$app/state'

/** Query-string names the API understands as filters (docs/API.md); everything else is page state. */
export const FILTER_PARAMS = [
  'range',
  'from',
  'to',
  'month',
  'tz',
  'keys',
  'tags',
  'teams',
  'users',
  'models',
  'providers',
  'projects',
  'apps',
  'status',
] as const

/** What these helpers read of a URL: `page.url` is read-only, a `new URL()` works too. */
export interface PageUrl {
  readonly searchParams: { get(name: string): string | null }
}

export function listParam(url: PageUrl, name: string): string[] {
  const v = url.searchParams.get(name)
  return v ? v.split(',').filter(Boolean) : []
}

/** The API query for the current URL: only filter params (so unknown-param 400s cannot happen), plus extras. */
export function apiParams(
  url: PageUrl,
  extra: Record<string, string | number | undefined | null> = {},
  allowed: readonly string[] = FILTER_PARAMS,
): URLSearchParams {
  const out = new URLSearchParams()
  for (const name of allowed) {
    const v = url.searchParams.get(name)
    if (v) out.set(name, v)
  }
  // Day buckets follow the viewer's clock unless the URL pins a zone.
  if (allowed.includes('tz') && !out.has('tz')) out.set('tz', localTz())
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null || v === '') out.delete(k)
    else out.set(k, String(v))
  }
  return out
}

/**
 * Writes filter/page state into the URL (so a view can be shared) and lets
 * the page react to it. Empty values remove the parameter.
 */
export function updateUrl(changes: Record<string, string | string[] | null | undefined>, replace = false) {
  const url = new URL(page.url.href)
  for (const [k, v] of Object.entries(changes)) {
    const value = Array.isArray(v) ? v.join(',') : v
    if (value === undefined || value === null || value === '') url.searchParams.delete(k)
    else url.searchParams.set(k, value)
  }
  if (url.search === page.url.search) return
  // reset: false keeps scroll and focus where they are (a filter change is not a new page).
  return goto(url, { replace, reset: false })
}

export function localTz(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  } catch {
    return 'UTC'
  }
}

/** YYYY-MM-DD plus n days (calendar arithmetic, no zone involved). */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + n)
  return d.toISOString().slice(0, 10)
}

export function todayLocal(): string {
  const d = new Date()
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`
}
