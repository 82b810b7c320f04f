import { z } from 'zod'
import { budgetScope, budgetView } from './admin-api.schema.ts'

/**
 * Alerts: what the anomaly detector finds (services/src/alerts), the panel's
 * API (/api/alerts), the admin list (/api/admin/alerts) and the budgets a
 * caller can see with their alerts (/api/budgets/status).
 */

/** What the detector can find; each kind is explained where it is detected (anomaly-detector.ts). */
export const ALERT_KINDS = ['spike', 'forecast', 'runaway_day', 'threshold'] as const
export const alertKind = z.enum(ALERT_KINDS)
export type AlertKind = z.infer<typeof alertKind>
const iso = z.string().describe('ISO 8601 UTC')

export const alertSchema = z.object({
  alertId: z
    .string()
    .describe('derived from (kind, subject, window, level): the same finding has the same id'),
  kind: alertKind,
  subjectType: z.enum(['key', 'budget']),
  subjectId: z.string(),
  windowStart: iso.describe('start of the hour, day or budget period the finding is about'),
  level: z.number().describe("threshold percentage for kind 'threshold', else 0"),
  severity: z.enum(['info', 'warning', 'critical']),
  message: z.string(),
  valueUsd: z.number(),
  baselineUsd: z.number(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.null()])),
  createdAt: iso,
  notifiedAt: iso.nullable(),
  acknowledgedAt: iso.nullable().describe('when a lead or admin said "seen, handled"'),
  acknowledgedBy: z.string().nullable(),
})
export type Alert = z.infer<typeof alertSchema>

/**
 * An alert as the dashboard shows it: the finding plus what it is about (the
 * key, its owner and team, or the budget and its cap), so the panel can name
 * it and link its actions without a second lookup.
 */
export const alertItem = alertSchema.extend({
  keyId: z.string().nullable(),
  keyName: z.string().nullable(),
  userId: z.string().nullable(),
  teamId: z.string().nullable(),
  budget: z
    .object({
      budgetId: z.string(),
      scope: budgetScope,
      scopeId: z.string(),
      capUsd: z.number(),
      period: z.string(),
    })
    .nullable(),
})
export type AlertItem = z.infer<typeof alertItem>

export const alertsListQuery = z.strictObject({
  days: z.coerce.number().int().min(1).max(90).default(7).describe('How many days back'),
  state: z.enum(['open', 'all']).default('all').describe('open: not acknowledged yet'),
})
export const alertIdParams = z.strictObject({
  alertId: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'an alert id is 32 hex characters; take it from GET /api/alerts')
    .describe('32 hex characters'),
})
export const adminAlertsQuery = z.strictObject({
  since: z.iso.datetime({ offset: true }).optional(),
  kinds: z
    .string()
    .max(200)
    .describe(`Comma-separated: ${ALERT_KINDS.join(', ')}`)
    .transform((s) =>
      s
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .pipe(z.array(alertKind))
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
})

export const alertItemsResponse = z.object({ alerts: z.array(alertItem) })
export type AlertItemsResponse = z.infer<typeof alertItemsResponse>
export const alertAckResponse = z.object({ alert: alertItem })
export type AlertAckResponse = z.infer<typeof alertAckResponse>
export const alertsResponse = z.object({ alerts: z.array(alertSchema) })
export const budgetStatusResponse = z.object({
  budgets: z.array(budgetView),
  alerts: z.array(alertSchema).describe('the last 7 days of alerts about these budgets and your keys'),
})
