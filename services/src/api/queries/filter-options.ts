import type { FilterOptions } from '@tokenmeter/contract'
import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import type { Scope } from '../filters.ts'

/** What the filter pickers may offer this caller: scoped entities from the store, values seen in usage. */
export async function queryFilterOptions(
  wh: Warehouse,
  store: AdminStore,
  scope: Scope,
): Promise<FilterOptions> {
  const keys = store
    .keys()
    .filter((k) =>
      scope.kind === 'all'
        ? true
        : scope.kind === 'team'
          ? k.teamId === scope.teamId
          : scope.keyIds.includes(k.keyId),
    )
  const teamIds = new Set(scope.kind === 'all' ? store.teams().map((t) => t.teamId) : [scope.teamId])
  const users = store
    .users()
    .filter((u) =>
      scope.kind === 'all'
        ? true
        : scope.kind === 'team'
          ? u.teamId === scope.teamId
          : u.userId === scope.userId,
    )
  let cond = '1'
  const params: Record<string, unknown> = {}
  if (scope.kind === 'team') {
    cond = 'team_id = {s_team:String}'
    params.s_team = scope.teamId
  } else if (scope.kind === 'keys') {
    cond = 'key_id IN {s_keys:Array(String)}'
    params.s_keys = scope.keyIds
  }
  // The daily rollup is small and holds every value ever seen.
  const [row] = await wh.query<
    Record<'o_models' | 'o_providers' | 'o_projects' | 'o_apps' | 'o_tags', string[]>
  >(
    `SELECT groupUniqArray(1000)(model) AS o_models, groupUniqArray(100)(provider) AS o_providers,
       groupUniqArrayIf(1000)(project, project != '') AS o_projects,
       groupUniqArrayIf(1000)(client_app, client_app != '') AS o_apps,
       groupUniqArrayArray(1000)(tags) AS o_tags
     FROM usage_1d WHERE ${cond}`,
    params,
  )
  const sorted = (a: string[] | undefined) => [...(a ?? [])].map(String).sort()
  const models = new Set(sorted(row?.o_models))
  if (scope.kind === 'all') for (const m of store.models()) models.add(m.model)
  return {
    keys: keys.map((k) => ({
      id: k.keyId,
      name: k.name,
      prefix: k.keyPrefix,
      userId: k.userId,
      teamId: k.teamId,
    })),
    teams: [...teamIds].filter(Boolean).map((id) => ({ id, name: store.team(id)?.name ?? id })),
    users: users.map((u) => ({ id: u.userId, name: u.name, email: u.email, teamId: u.teamId })),
    models: [...models].sort(),
    providers: sorted(row?.o_providers),
    projects: sorted(row?.o_projects),
    apps: sorted(row?.o_apps),
    tags: sorted(row?.o_tags),
  }
}
