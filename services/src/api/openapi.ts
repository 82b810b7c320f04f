import { z } from 'zod'
import * as s from './schemas.ts'

type Json = Record<string, unknown>

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output'): Json =>
  // The document declares 3.1 (JSON Schema 2020-12) once; per-schema $schema keys are noise.
  (({ $schema: _, ...rest }) => rest)(z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json)

/** Each property of a query schema becomes a query parameter with its JSON Schema. */
function queryParameters(schema: z.ZodType): Json[] {
  const js = jsonSchema(schema, 'input') as { properties?: Record<string, Json>; required?: string[] }
  return Object.entries(js.properties ?? {}).map(([name, p]) => {
    const { description, ...rest } = p
    return { name, in: 'query', required: js.required?.includes(name) ?? false, description, schema: rest }
  })
}

const error = {
  description: 'Error envelope',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        properties: {
          error: {
            type: 'object',
            properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
            required: ['code', 'message'],
          },
        },
        required: ['error'],
      },
    },
  },
}

interface Op {
  summary: string
  query?: z.ZodType
  body?: z.ZodType
  response?: z.ZodType
  responseType?: string
  public?: boolean
  extra?: Json
}

function operation(op: Op): Json {
  const ok = op.responseType
    ? { description: 'OK', content: { [op.responseType]: { schema: { type: 'string' } } } }
    : {
        description: 'OK',
        content: { 'application/json': { schema: op.response ? jsonSchema(op.response, 'output') : {} } },
      }
  return {
    summary: op.summary,
    ...(op.public ? { security: [] } : {}),
    parameters: op.query ? queryParameters(op.query) : [],
    ...(op.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: jsonSchema(op.body, 'input') } },
          },
        }
      : {}),
    responses: {
      '200': ok,
      '400': { ...error, description: 'Unknown or malformed parameter (the message names it)' },
      ...(op.public
        ? {}
        : { '401': error, '403': { ...error, description: 'Role or filter outside your scope' } }),
    },
    ...op.extra,
  }
}

/** OpenAPI 3.1 for the usage API, generated from the zod schemas the routes parse with. */
export function buildOpenApi(): Json {
  const paths: Record<string, Record<string, Json>> = {
    '/api/session': {
      post: operation({
        summary: 'Exchange a virtual key, a one-time sign-in token or ADMIN_TOKEN for the tm_session cookie',
        body: s.sessionBody,
        response: s.meResponse,
        public: true,
      }),
      delete: operation({ summary: 'Sign out (clears the cookie)', public: true }),
    },
    '/api/me': { get: operation({ summary: 'Who is signed in', response: s.meResponse }) },
    '/api/filters': {
      get: operation({
        summary: 'Options for the filter pickers, scoped to the caller',
        query: s.filterOptionsQuery,
        response: s.filterOptionsResponse,
      }),
    },
    '/api/kpis': {
      get: operation({
        summary: 'Headline numbers for a filter',
        query: s.kpisQuery,
        response: s.kpisResponse,
      }),
    },
    '/api/series': {
      get: operation({
        summary: 'Time series, optionally split for stacked charts',
        query: s.seriesQuery,
        response: s.seriesResponse,
      }),
    },
    '/api/breakdown': {
      get: operation({
        summary: 'Per-group table with trend, sortable, searchable, paged',
        query: s.breakdownQuery,
        response: s.breakdownResponse,
      }),
    },
    '/api/leaderboard': {
      get: operation({
        summary: 'Top users, teams or keys',
        query: s.leaderboardQuery,
        response: s.leaderboardResponse,
      }),
    },
    '/api/keys/spend': {
      get: operation({
        summary: 'Per-key spend and spend against the key cap',
        query: s.keySpendQuery,
        response: s.keySpendResponse,
      }),
    },
    '/api/requests': {
      get: operation({
        summary: 'Request log (newest first, cursor-paged)',
        query: s.requestLogQuery,
        response: s.requestLogResponse,
      }),
    },
    '/api/usage': {
      get: operation({
        summary: 'Monthly shape with continuous *Cents',
        query: s.monthlyUsageQuery,
        response: s.monthlyUsageResponse,
      }),
    },
    '/api/export.csv': {
      get: operation({
        summary:
          'Cost table as CSV (default: last 30 days, one row per group; header group_id,name,email,team,requests,input_tokens,output_tokens,cached_tokens,total_tokens,cost_usd,cost_usd_exact,cache_write_tokens,reasoning_tokens,unpriced_requests; rows=day puts a day column first and gives one row per group and day; bom=1 adds a UTF-8 BOM)',
        query: s.exportQuery,
        responseType: 'text/csv',
      }),
    },
    '/api/live': {
      get: operation({
        summary:
          'WebSocket (upgrade). Same filters as /api/kpis. Server sends x-server-messages; the client may send x-client-messages to change its filter. Closes with 4401 when the credential is revoked.',
        query: s.kpisQuery,
        extra: {
          responses: {
            '101': { description: 'Switching protocols' },
            '400': error,
            '401': error,
            '403': error,
          },
          'x-server-messages': jsonSchema(s.liveServerMessage, 'output'),
          'x-client-messages': jsonSchema(s.liveClientMessage, 'input'),
        },
      }),
    },
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tokenmeter usage API',
      version: '1',
      description:
        'Usage analytics for LLM API traffic. Money is USD (spendUsd) except the monthly shape (continuous *Cents). Lists are comma-separated; AND across parameters, OR within one.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { cookie: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A virtual key (tm_...) or ADMIN_TOKEN' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'tm_session' },
      },
    },
    paths,
  }
}
