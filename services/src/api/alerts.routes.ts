import {
  type Alert,
  type AlertItem,
  alertAckResponse,
  alertIdParams,
  alertItemsResponse,
  alertsListQuery,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { createAlertStore } from '../alerts/alert-store.ts'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import type { Principal } from '../core/identity/auth.ts'
import { requireRole } from './auth.plugin.ts'
import { visibleBudgets } from './budget-status.routes.ts'
import { refusal, responses } from './route-schemas.ts'

const DAY = 86_400_000

/**
 * An alert as the dashboard shows it: the finding plus what it is about (the
 * key, its owner and team, or the budget and its cap), so the panel can name
 * it and link its actions without a second lookup.
 */
function describe(core: Core, a: Alert): AlertItem {
  const { store } = core
  const budget =
    a.subjectType === 'budget' ? store.budgets().find((b) => b.budgetId === a.subjectId) : undefined
  const keyId = a.subjectType === 'key' ? a.subjectId : budget?.scope === 'key' ? budget.scopeId : null
  const key = keyId ? store.key(keyId) : undefined
  return {
    ...a,
    keyId,
    keyName: key?.name ?? null,
    userId: key?.userId ?? (budget?.scope === 'user' ? budget.scopeId : null),
    teamId: key?.teamId ?? (budget?.scope === 'team' ? budget.scopeId : null),
    budget: budget
      ? {
          budgetId: budget.budgetId,
          scope: budget.scope,
          scopeId: budget.scopeId,
          capUsd: budget.capUsd,
          period: budget.period,
        }
      : null,
  }
}

/** What a lead may see: their team's keys and the budgets that bound their team; admins see all. */
function visibleSubjects(core: Core, p: Principal): Set<string> | 'all' {
  if (p.role === 'admin') return 'all'
  const keys = core.store
    .keys()
    .filter((k) => k.teamId === p.teamId)
    .map((k) => k.keyId)
  return new Set([...keys, ...visibleBudgets(core, p).map((b) => b.budgetId)])
}

/**
 * The anomaly panel's API (leads and admins): GET /api/alerts lists the
 * findings of the alert detector about what the caller can see, newest first;
 * POST /api/alerts/:alertId/ack marks one as handled, for everyone, for good.
 */
export const alertsRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const alerts = createAlertStore(core.warehouse)
  // Before validation: a member hears 403, not which parameter was wrong.
  const leadOrAdmin = { preValidation: requireRole('admin', 'lead') }
  const tags = ['alerts']

  app.get(
    '/alerts',
    {
      ...leadOrAdmin,
      schema: {
        tags,
        summary: 'Alerts about what you can see, newest first, with what each is about',
        querystring: alertsListQuery,
        response: responses(alertItemsResponse),
      },
    },
    async (request) => {
      const q = request.query
      const visible = visibleSubjects(core, request.principal!)
      if (visible !== 'all' && visible.size === 0) return { alerts: [] }
      const list = await alerts.list({
        since: new Date(Date.now() - q.days * DAY),
        subjectIds: visible === 'all' ? undefined : [...visible],
        limit: 500,
      })
      return {
        alerts: list.filter((a) => q.state === 'all' || !a.acknowledgedAt).map((a) => describe(core, a)),
      }
    },
  )

  app.post(
    '/alerts/:alertId/ack',
    {
      ...leadOrAdmin,
      schema: {
        tags,
        summary: 'Acknowledge an alert, for everyone (acknowledging twice is a no-op)',
        params: alertIdParams,
        response: { ...responses(alertAckResponse), 404: refusal('No such alert that you can see') },
      },
    },
    async (request) => {
      const p = request.principal!
      const id = request.params.alertId
      const alert = await alerts.get(id)
      const visible = visibleSubjects(core, p)
      if (!alert || (visible !== 'all' && !visible.has(alert.subjectId))) {
        throw new HttpError(404, 'not_found', `No alert ${id} that you can see; see GET /api/alerts.`)
      }
      if (alert.acknowledgedAt) return { alert: describe(core, alert) }
      const acked = await alerts.acknowledge(alert, p.userId || 'admin-token')
      return { alert: describe(core, acked) }
    },
  )
}
