import {
  adminAlertsQuery,
  alertsResponse,
  type BudgetView,
  budgetBody,
  budgetIdParams,
  budgetResponse,
  budgetsResponse,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { createAlertStore } from '../alerts/alert-store.ts'
import type { Core } from '../bootstrap.ts'
import type { BudgetStatus } from '../budgets/budget-enforcer.ts'
import { HttpError } from '../core/errors/http-error.ts'
import type { Budget } from '../core/identity/entities.ts'
import { newId } from '../core/identity/keys.ts'
import { requireRole } from './auth.plugin.ts'
import { created, deleted, refusal, responses } from './route-schemas.ts'

/** A budget as the API shows it: its settings and, when the enforcer can tell, this period's spend. */
function publicBudget(b: Budget, s?: BudgetStatus): BudgetView {
  return {
    ...b,
    spentUsd: s?.spentUsd ?? null,
    reservedUsd: s?.reservedUsd ?? null,
    percentUsed: s?.percentUsed ?? null,
    periodStart: s?.periodStart ?? null,
    resetsAt: s?.resetsAt ?? null,
  }
}

export async function budgetsWithStatus(core: Core, budgets: Budget[]) {
  // Redis away: the budgets are listed without this period's spend (nulls); the cause is logged and counted.
  const statuses =
    (await core.budgets
      .status?.(budgets)
      .catch((err) => void core.backgroundErrors.report('budget_status', err))) ?? []
  const byId = new Map(statuses.map((s) => [s.budget.budgetId, s]))
  return budgets.map((b) => publicBudget(b, byId.get(b.budgetId)))
}

/**
 * Budgets and alerts (admin role only), mounted under /api/admin. The alert
 * detector itself runs as a background job of the api role (bootstrap.ts).
 */
export const budgetsRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const { store } = core
  const alerts = createAlertStore(core.warehouse)
  // Before validation: a caller who is not an admin hears 401/403, not which field was wrong.
  app.addHook('preValidation', requireRole('admin'))
  const doc = (summary: string) => ({ tags: ['budgets'], summary })

  app.get(
    '/budgets',
    { schema: { ...doc("Budgets with this period's spend"), response: responses(budgetsResponse) } },
    async () => ({ budgets: await budgetsWithStatus(core, store.budgets()) }),
  )

  app.post(
    '/budgets',
    {
      schema: {
        ...doc('Create or replace a budget'),
        body: budgetBody,
        response: created(budgetResponse),
      },
    },
    async (request, reply) => {
      const b = request.body
      const exists =
        b.scope === 'key'
          ? store.key(b.scopeId)?.kind === 'key'
          : b.scope === 'user'
            ? !!store.user(b.scopeId)
            : !!store.team(b.scopeId)
      if (!exists) {
        throw new HttpError(
          400,
          'unknown_scope',
          `No ${b.scope} ${b.scopeId}; see GET /api/admin/${b.scope === 'key' ? 'keys' : `${b.scope}s`}.`,
        )
      }
      const budget = await store.upsertBudget({ ...b, budgetId: b.budgetId ?? newId('budget') })
      const [shown] = await budgetsWithStatus(core, [budget])
      return reply.code(201).send({ budget: shown! })
    },
  )

  app.delete(
    '/budgets/:budgetId',
    {
      schema: {
        ...doc('Delete a budget'),
        params: budgetIdParams,
        response: { ...deleted, 404: refusal('No such budget') },
      },
    },
    async (request, reply) => {
      if (!store.budgets().some((b) => b.budgetId === request.params.budgetId)) {
        throw new HttpError(
          404,
          'not_found',
          `No budget ${request.params.budgetId}; see GET /api/admin/budgets.`,
        )
      }
      await store.deleteBudget(request.params.budgetId)
      return reply.code(204).send(undefined)
    },
  )

  app.get(
    '/alerts',
    {
      schema: {
        ...doc('What the alert detector found, newest first'),
        querystring: adminAlertsQuery,
        response: responses(alertsResponse),
      },
    },
    async (request) => {
      const q = request.query
      return {
        alerts: await alerts.list({
          since: q.since ? new Date(q.since) : undefined,
          kinds: q.kinds ?? [],
          limit: q.limit,
        }),
      }
    },
  )
}
