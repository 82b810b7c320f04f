import { budgetStatusResponse } from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { createAlertStore } from '../alerts/alert-store.ts'
import type { Core } from '../bootstrap.ts'
import type { Principal } from '../core/identity/auth.ts'
import type { Budget } from '../core/identity/entities.ts'
import { requireRole } from './auth.plugin.ts'
import { budgetsWithStatus } from './budgets.routes.ts'
import { responses } from './route-schemas.ts'

const WEEK_MS = 7 * 86_400_000

/** Budgets a caller may see: admins all; leads their team's; members those that bound them. */
export function visibleBudgets(core: Core, p: Principal): Budget[] {
  const all = core.store.budgets()
  if (p.role === 'admin') return all
  const keys = core.store
    .keys()
    .filter((k) => (p.role === 'lead' ? k.teamId === p.teamId : k.userId === p.userId))
  const keyIds = new Set(keys.map((k) => k.keyId))
  const userIds = new Set(
    p.role === 'lead'
      ? core.store
          .users()
          .filter((u) => u.teamId === p.teamId)
          .map((u) => u.userId)
      : [p.userId],
  )
  return all.filter(
    (b) =>
      (b.scope === 'key' && keyIds.has(b.scopeId)) ||
      (b.scope === 'user' && userIds.has(b.scopeId)) ||
      (b.scope === 'team' && b.scopeId === p.teamId),
  )
}

/**
 * GET /api/budgets/status, for any signed-in caller: the budgets that apply
 * to what they can see, this period's spend, and the last week's alerts about
 * them (key alerts for their keys, budget alerts for those budgets).
 */
export const budgetStatusRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const alertStore = createAlertStore(core.warehouse)
  const schema = {
    tags: ['budgets'],
    summary: 'The budgets that bound what you can see, their spend and their alerts of the last 7 days',
    response: responses(budgetStatusResponse),
  }
  app.get('/budgets/status', { preValidation: requireRole(), schema }, async (request) => {
    const p = request.principal!
    const budgets = visibleBudgets(core, p)
    const keyIds =
      p.role === 'admin'
        ? []
        : core.store
            .keys()
            .filter((k) => (p.role === 'lead' ? k.teamId === p.teamId : k.userId === p.userId))
            .map((k) => k.keyId)
    const subjects = [...budgets.map((b) => b.budgetId), ...keyIds]
    const alerts =
      p.role !== 'admin' && subjects.length === 0
        ? []
        : await alertStore.list({ since: new Date(Date.now() - WEEK_MS), subjectIds: subjects, limit: 100 })
    return { budgets: await budgetsWithStatus(core, budgets), alerts }
  })
}
