/**
 * The dashboard's only door to data: same-origin fetches of the Tokenmeter
 * API (docs/API.md). The session cookie rides along; errors come back as the
 * API's envelope and are thrown as ApiError so pages can show them.
 */

export type Role = 'admin' | 'lead' | 'member'

export interface Me {
  role: Role
  userId: string
  teamId: string
  name: string
  email: string
}

export interface FilterOptions {
  keys: { id: string; name: string; prefix: string; userId: string; teamId: string }[]
  teams: { id: string; name: string }[]
  users: { id: string; name: string; email: string; teamId: string }[]
  models: string[]
  providers: string[]
  projects: string[]
  apps: string[]
  tags: string[]
}

export interface Kpis {
  spendUsd: number
  requests: number
  errors: number
  errorRate: number
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  /** A part of outputTokens (billed as output). */
  reasoningTokens: number
  /** Requests recorded at cost 0 because no price was known for their model. */
  unpricedRequests: number
  totalTokens: number
  activeUsers: number
  avgRequestsPerUser: number
  latencyP50Ms: number
  latencyP95Ms: number
  from: string
  to: string
  granularity: string
  source: string
}

export interface Point {
  requests: number
  errors: number
  spendUsd: number
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  reasoningTokens: number
  unpricedRequests: number
  activeUsers: number
}

export interface Series {
  granularity: '5m' | '1h' | '1d'
  buckets: string[]
  series: { id: string; name: string; points: Point[] }[]
}

export interface BreakdownRow {
  id: string
  name: string
  email?: string
  teamId?: string
  teamName?: string
  requests: number
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  reasoningTokens: number
  unpricedRequests: number
  spendUsd: number
  models: string[]
  trend: number[]
}

export interface Breakdown {
  total: number
  buckets: string[]
  rows: BreakdownRow[]
}

export interface Leaderboard {
  rows: { rank: number; id: string; name: string; value: number }[]
}

export interface KeySpend {
  keyId: string
  name: string
  prefix: string
  userId: string
  teamId: string
  capUsd: number | null
  period: string | null
  spentUsd: number
  percentUsed: number | null
}

export interface RequestRow {
  requestId: string
  startedAt: string
  keyPrefix: string
  userId: string
  teamId: string
  model: string
  provider: string
  endpoint: string
  statusCode: number
  errorClass: string
  streamed: boolean
  inputTokens: number
  outputTokens: number
  cachedTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  tokensEstimated: boolean
  /** No price was known for the model: spendUsd is 0 for lack of a price, not free. */
  priceUnknown: boolean
  spendUsd: number
  latencyMs: number
  ttftMs: number
  tags: string[]
  project: string
  clientApp: string
}

export interface MonthlyUsage {
  month: string
  totalCents: number
  requests: number
  daily: {
    date: string
    totalCents: number
    requests: number
    models: { model: string; costCents: number }[]
    keys: { keyId: string; costCents: number }[]
  }[]
  keys: { keyId: string; name: string; prefix: string; costCents: number; requests: number }[]
  models: {
    model: string
    provider: string
    costCents: number
    requests: number
    inputTokens: number
    outputTokens: number
  }[]
}

export class ApiError extends Error {
  status: number
  code: string
  /** The envelope's `details`, e.g. `{ buffered }` with a `storage_unavailable` 503. */
  details?: Record<string, unknown>
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

/** Called on any 401 so the shell can send the user to sign in. */
let onUnauthenticated: (() => void) | undefined
export function setUnauthenticatedHandler(fn: () => void) {
  onUnauthenticated = fn
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers)
  if (init.body && !headers.has('content-type')) headers.set('content-type', 'application/json')
  let res: Response
  try {
    res = await fetch(path, { credentials: 'same-origin', ...init, headers })
  } catch {
    throw new ApiError(0, 'network', 'Could not reach the Tokenmeter API. Is the server running?')
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let body: unknown
  try {
    body = text ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  if (!res.ok) {
    const err = (
      body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined
    )?.error
    if (res.status === 401 && !path.startsWith('/api/session')) onUnauthenticated?.()
    throw new ApiError(
      res.status,
      err?.code ?? `http_${res.status}`,
      err?.message ?? res.statusText,
      err?.details,
    )
  }
  return body as T
}

export const get = <T>(path: string, params?: URLSearchParams | string) =>
  api<T>(params && String(params) ? `${path}?${params}` : path)

export const send = <T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) =>
  api<T>(path, { method, body: body === undefined ? undefined : JSON.stringify(body) })

export interface KeySpendResponse {
  keys: (KeySpend & { revoked?: boolean; periodSpentUsd?: number | null; periodStart?: string | null })[]
}

export interface RequestLog {
  rows: RequestRow[]
  nextCursor: string | null
}

// --- Anomaly alerts (GET /api/alerts, POST /api/alerts/{id}/ack) -----------------

export type AlertKind = 'spike' | 'forecast' | 'runaway_day' | 'threshold'

export interface AlertItem {
  alertId: string
  kind: AlertKind
  subjectType: 'key' | 'budget'
  subjectId: string
  windowStart: string
  level: number
  severity: 'info' | 'warning' | 'critical'
  message: string
  valueUsd: number
  baselineUsd: number
  details: Record<string, string | number | null>
  createdAt: string
  notifiedAt: string | null
  acknowledgedAt: string | null
  acknowledgedBy: string | null
  keyId: string | null
  keyName: string | null
  userId: string | null
  teamId: string | null
  budget: {
    budgetId: string
    scope: 'key' | 'user' | 'team'
    scopeId: string
    capUsd: number
    period: string
  } | null
}
