import { FILTER_PARAMS, type PageUrl } from '$lib/filters'
/**
 * Where a user, team, key, model, tag, project or client app opens: its
 * detail page, carrying the filters of the page it was opened from (the
 * range, the other lists) so the numbers stay comparable.
 */
export type DetailDim = 'user' | 'team' | 'key' | 'model' | 'tag' | 'project' | 'app'

export const DETAIL_BASE: Record<DetailDim, string> = {
  user: '/users',
  team: '/teams',
  key: '/keys',
  model: '/models',
  tag: '/tags',
  project: '/projects',
  app: '/apps',
}

/** The API's list filter that scopes a detail page to its subject. */
export const DETAIL_FILTER: Record<DetailDim, string> = {
  user: 'users',
  team: 'teams',
  key: 'keys',
  model: 'models',
  tag: 'tags',
  project: 'projects',
  app: 'apps',
}

/**
 * Parameters worth carrying from one page to a detail page: the time window and
 * the other list filters; not `status`, so a detail page shows all of its subject's traffic.
 */
const CARRY: readonly string[] = FILTER_PARAMS.filter((p) => p !== 'status')

export function detailHref(dim: DetailDim, id: string, from?: PageUrl): string {
  const p = new URLSearchParams()
  if (from) {
    for (const name of CARRY) {
      const v = from.searchParams.get(name)
      // The subject's own filter is the page itself, not a parameter.
      if (v && name !== DETAIL_FILTER[dim]) p.set(name, v)
    }
  }
  const qs = String(p)
  return `${DETAIL_BASE[dim]}/${encodeURIComponent(id)}${qs ? `?${qs}` : ''}`
}
