/**
 * The one error envelope: `{ error: { code, message } }`. Throw HttpError for
 * anything the caller can fix; the app's error handler renders it, and hides
 * the details of everything else behind a 500.
 */
export class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly details?: unknown
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } }
}
