import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { AlertKind } from '../alerts/alert.ts'
import { createAlertStore } from '../alerts/alert-store.ts'
import type { Core } from '../bootstrap.ts'
import type { BudgetStatus } from '../budgets/budget-enforcer.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { type Budget, budgetSchema } from '../core/identity/entities.ts'
import { newId } from '../core/identity/keys.ts'
import { isTimeZone } from '../core/time/time-zone.ts'
import { requireRole } from './auth.plugin.ts'
import { parseInput } from './input-errors.ts'

const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : -')

const budgetBody = z.strictObject({
  budgetId: id.optional(),
  scope: z.enum(['key', 'user', 'team']),
  scopeId: id,
  period: z.enum(['day', 'week', 'month']),
  capUsd: budgetSchema.shape.capUsd,
  timezone: z
    .string()
    .max(64)
    .refine(isTimeZone, 'use an IANA time zone such as UTC or Europe/Berlin')
    .default('UTC'),
  thresholds: z
    .array(z.number().int().min(1).max(100))
    .max(10)
    .default([50, 80, 100])
    .transform((t) => [...new Set(t)].sort((a, b) => a - b)),
})

const alertsQuery = z.strictObject({
  since: z.iso.datetime({ offset: true }).optional(),
  kinds: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
})
const KINDS: AlertKind[] = ['spike', 'forecast', 'runaway_day', 'threshold']

const parse = <T extends z.ZodType>(schema: T, value: unknown, what: string) =>
  parseInput(schema, value, 'body', what)

/** A budget as the API shows it: its settings and, when the enforcer can tell, this period's spend. */
export function publicBudget(b: Budget, s?: BudgetStatus) {
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
export const budgetsRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const { store } = core
  const alerts = createAlertStore(core.warehouse)
  app.addHook('preHandler', requireRole('admin'))

  app.get('/budgets', async () => ({ budgets: await budgetsWithStatus(core, store.budgets()) }))

  app.post('/budgets', async (request, reply) => {
    const b = parse(budgetBody, request.body, 'budget')
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
    return reply.code(201).send({ budget: shown })
  })

  app.delete<{ Params: { budgetId: string } }>('/budgets/:budgetId', async (request, reply) => {
    if (!store.budgets().some((b) => b.budgetId === request.params.budgetId)) {
      throw new HttpError(
        404,
        'not_found',
        `No budget ${request.params.budgetId}; see GET /api/admin/budgets.`,
      )
    }
    await store.deleteBudget(request.params.budgetId)
    return reply.code(204).send()
  })

  app.get('/alerts', async (request) => {
    const q = parseInput(alertsQuery, request.query, 'query')
    const kinds = q.kinds ? q.kinds.split(',').map((k) => k.trim()) : []
    const unknown = kinds.filter((k) => !KINDS.includes(k as AlertKind))
    if (unknown.length) {
      throw new HttpError(
        400,
        'invalid_query',
        `Unknown alert kind ${unknown.join(', ')}; use ${KINDS.join(', ')}.`,
      )
    }
    return {
      alerts: await alerts.list({
        since: q.since ? new Date(q.since) : undefined,
        kinds: kinds as AlertKind[],
        limit: q.limit,
      }),
    }
  })
}
