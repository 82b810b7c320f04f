import type { IncomingHttpHeaders } from 'node:http'

/**
 * Errors the gateway itself makes on `/v1/*`, in the envelope of the provider
 * whose API the client speaks, so that each official SDK raises its own error
 * class and keeps the error type. Our own code stays in the body (`code`), as
 * do any `details`. Errors from the upstream are relayed as it sent them and
 * never pass through here.
 *
 * - Anthropic (`/v1/messages*`, and `/v1/models*` when `anthropic-version` is
 *   sent): `{ type: "error", error: { type, message, code, details? } }`
 * - OpenAI (every other `/v1` path): `{ error: { message, type, param, code, details? } }`
 */
export type ErrorFlavor = 'openai' | 'anthropic'

export function errorFlavor(url: string, headers: IncomingHttpHeaders): ErrorFlavor {
  const path = url.split('?')[0] ?? ''
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return 'anthropic'
  if ((path === '/v1/models' || path.startsWith('/v1/models/')) && headers['anthropic-version'])
    return 'anthropic'
  return 'openai'
}

/** Anthropic's documented error types, by HTTP status. */
function anthropicType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error'
    case 401:
      return 'authentication_error'
    case 403:
      return 'permission_error'
    case 404:
      return 'not_found_error'
    case 413:
      return 'request_too_large'
    case 429:
      return 'rate_limit_error'
    case 503:
    case 529:
      return 'overloaded_error'
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error'
  }
}

/** OpenAI's error `type`s; the SDKs pick their class by status, the type is for people and logs. */
function openaiType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

export function providerErrorBody(
  flavor: ErrorFlavor,
  status: number,
  code: string,
  message: string,
  details?: unknown,
): Record<string, unknown> {
  const extra = details === undefined ? {} : { details }
  if (flavor === 'anthropic') {
    return { type: 'error', error: { type: anthropicType(status), message, code, ...extra } }
  }
  return { error: { message, type: openaiType(status), param: null, code, ...extra } }
}
