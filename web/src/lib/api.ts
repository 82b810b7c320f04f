/**
 * The dashboard's only door to data: same-origin fetches of the Tokenmeter
 * API (docs/API.md). The session cookie rides along; errors come back as the
 * API's envelope and are thrown as ApiError so pages can show them.
 */

import type {
  BreakdownResult,
  KeySpendResult,
  LeaderboardResult,
  RequestLogResult,
  SeriesResult,
} from '@tokenmeter/contract'

// The answers' types come from the zod schemas the server validates and
// documents with (packages/contract): a renamed or retyped field fails
// `npm run check -w web`, not the page at run time.
export type {
  AdminSettings,
  AlertItem,
  AlertKind,
  AvailableModels,
  BreakdownRow,
  FilterOptions,
  Kpis,
  LeaderboardVisibility,
  Me,
  MonthlyUsage,
  MyKey,
  MyKeys,
  Point,
  Role,
} from '@tokenmeter/contract'
export type Series = SeriesResult
export type Breakdown = BreakdownResult
export type Leaderboard = LeaderboardResult
export type KeySpendResponse = KeySpendResult
export type RequestLog = RequestLogResult

export class ApiError extends Error {
  status: number
  code: string
  /** The envelope's `details`, e.g. `{ buffered }` with a `storage_unavailable` 503. */
  details?: Record<string, unknown>
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message)
    this.details = details
    this.status = status
    this.code = code
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

export const send = <T>(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown) =>
  api<T>(path, { method, body: body === undefined ? undefined : JSON.stringify(body) })
