import type { RequestLogResult } from '@tokenmeter/contract'
import { z } from 'zod'
import { HttpError } from '../../core/errors/http-error.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'

const cursorSchema = z.tuple([z.string().regex(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/), z.uuid()])

/** The cursor is the (started_at, request_id) of the last row sent, opaque to clients. */
function decodeCursor(cursor: string): [string, string] {
  try {
    return cursorSchema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString()))
  } catch {
    throw new HttpError(
      400,
      'invalid_parameter',
      'Invalid parameter "cursor": use the nextCursor of the previous page.',
      {
        parameter: 'cursor',
      },
    )
  }
}

const encodeCursor = (startedAt: string, id: string) =>
  Buffer.from(JSON.stringify([startedAt, id])).toString('base64url')

type Row = {
  id_s: string
  started_s: string
  key_id: string
  key_prefix: string
  user_id: string
  team_id: string
  model: string
  provider: string
  endpoint: string
  status_code: number
  error_class: string
  streamed: boolean | number
  input_tokens: number
  output_tokens: number
  cached_read_tokens: number
  cache_write_tokens: number
  reasoning_tokens: number
  tokens_estimated: boolean | number
  price_unknown: boolean | number
  cost_s: string
  latency_ms: number
  ttft_ms: number
  tags: string[]
  project: string
  client_app: string
}

/** Newest first, from the raw table (the only place with single requests). */
export async function queryRequestLog(
  wh: Warehouse,
  f: UsageFilter,
  scope: Scope,
  limit: number,
  cursor?: string,
): Promise<RequestLogResult> {
  const where = whereClause(f, scope, 'started_at')
  let sql = where.sql
  const params: Record<string, unknown> = { ...where.params, limit: limit + 1 }
  if (cursor) {
    const [t, id] = decodeCursor(cursor)
    sql += " AND (started_at, request_id) < ({c_t:DateTime64(3, 'UTC')}, {c_id:UUID})"
    params.c_t = t
    params.c_id = id
  }
  const rows = await wh.query<Row>(
    `SELECT toString(request_id) AS id_s, toString(started_at) AS started_s, key_id, key_prefix, user_id, team_id,
       model, provider, endpoint, status_code, error_class, streamed, input_tokens, output_tokens, cached_read_tokens,
       cache_write_tokens, reasoning_tokens, tokens_estimated, price_unknown, toString(cost_usd) AS cost_s, latency_ms, ttft_ms, tags, project, client_app
     FROM requests WHERE ${sql} ORDER BY started_at DESC, request_id DESC LIMIT {limit:UInt32}`,
    params,
  )
  const page = rows.slice(0, limit)
  const last = page[page.length - 1]
  return {
    rows: page.map((r) => ({
      requestId: r.id_s,
      startedAt: `${r.started_s.replace(' ', 'T')}Z`,
      keyId: r.key_id,
      keyPrefix: r.key_prefix,
      userId: r.user_id,
      teamId: r.team_id,
      model: r.model,
      provider: r.provider,
      endpoint: r.endpoint,
      statusCode: Number(r.status_code),
      errorClass: r.error_class,
      streamed: Boolean(r.streamed),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      cachedTokens: Number(r.cached_read_tokens),
      cacheWriteTokens: Number(r.cache_write_tokens),
      reasoningTokens: Number(r.reasoning_tokens),
      tokensEstimated: Boolean(r.tokens_estimated),
      priceUnknown: Boolean(r.price_unknown),
      spendUsd: Number(r.cost_s),
      latencyMs: Number(r.latency_ms),
      ttftMs: Number(r.ttft_ms),
      tags: r.tags.map(String),
      project: r.project,
      clientApp: r.client_app,
    })),
    nextCursor: rows.length > limit && last ? encodeCursor(last.started_s, last.id_s) : null,
  }
}
