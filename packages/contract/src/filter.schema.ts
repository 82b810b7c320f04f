import { z } from 'zod'
import { isTimeZone } from './time-zone-name.ts'

/**
 * The one filter schema, shared by every usage endpoint, the CSV export, the
 * WebSocket and the OpenAPI document. Query strings carry lists as
 * comma-separated values; `.strict()` turns an unknown parameter into a 400.
 */
const list = (what: string) =>
  z
    .string()
    .max(8_000)
    .describe(`Comma-separated ${what}; OR within the list, AND across parameters.`)
    .transform((s) => [
      ...new Set(
        s
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(z.string().max(200, `each value is at most 200 characters`)).max(200, 'at most 200 values'))

const ISO = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)?)?$/
const isoTime = z
  .string()
  .regex(ISO, 'use ISO 8601, e.g. 2025-01-31T00:00:00Z or 2025-01-31 (local to tz)')
  .describe('ISO 8601 instant; without an offset it is read in `tz`.')

export const filterFields = {
  range: z.enum(['24h', '7d', '14d', '30d', '90d']).optional().describe('Preset range (default 7d).'),
  from: isoTime.optional(),
  to: isoTime.optional(),
  month: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'use YYYY-MM')
    .optional()
    .describe('A calendar month in `tz`.'),
  tz: z
    .string()
    .refine(isTimeZone, 'unknown IANA time zone, e.g. UTC or Europe/Berlin')
    .default('UTC')
    .describe('IANA time zone for day/hour buckets and local dates.'),
  granularity: z
    .enum(['5m', '1h', '1d'])
    .optional()
    .describe('Series bucket width; by default it fits the range.'),
  keys: list('API key ids').optional(),
  tags: list('tags').optional(),
  teams: list('team ids').optional(),
  users: list('user ids').optional(),
  models: list('model names').optional(),
  providers: list('providers').optional(),
  projects: list('projects').optional(),
  apps: list('client apps').optional(),
  status: z.enum(['ok', 'error']).optional().describe('ok: HTTP status < 400; error: >= 400.'),
}

export const filterSchema = z.object(filterFields).strict()
export type FilterInput = z.input<typeof filterSchema>
export type ParsedFilter = z.output<typeof filterSchema>
