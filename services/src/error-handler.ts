import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod'
import { invalidInput, issuesOfValidation } from './api/input-errors.ts'
import { errorBody, HttpError } from './core/errors/http-error.ts'

/**
 * Every error of every route becomes the one envelope here:
 * `{ error: { code, message } }`. Input faults (HttpError, or a route's zod
 * schema refusing the request) keep their 4xx and a message that says what to
 * fix; an answer that does not match its declared response schema, and
 * anything unexpected, is a 500 that hides internals and is logged once.
 */
export function createErrorHandler(opts: { maxBodyBytes: number }) {
  return (caught: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    let err: unknown = caught
    // A request the route's zod schema refused: the same 400 as every other input fault.
    if (hasZodFastifySchemaValidationErrors(caught)) {
      const source =
        caught.validationContext === 'body'
          ? 'body'
          : caught.validationContext === 'params'
            ? 'params'
            : 'query'
      err = invalidInput(issuesOfValidation(caught.validation), source)
    }
    if (err instanceof HttpError) {
      return reply.status(err.status).send(errorBody(err.code, err.message, err.details))
    }
    // An answer that does not match its declared schema is our bug: say which field, to the log only.
    if (err instanceof Error && 'method' in err && isResponseSerializationError(err)) {
      request.log.error(
        { err, issues: (err.cause as { issues?: unknown })?.issues, url: err.url },
        'answer does not match its response schema',
      )
      return reply
        .status(500)
        .send(errorBody('internal', 'Internal error; see the server log for the request id.'))
    }
    const e = err as { statusCode?: number; code?: string; message: string; validation?: unknown }
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .status(413)
        .send(
          errorBody('body_too_large', `Request body exceeds ${opts.maxBodyBytes} bytes (MAX_BODY_BYTES).`),
        )
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(e.statusCode).send(errorBody(e.code ?? 'bad_request', e.message))
    }
    request.log.error({ err }, 'unhandled error')
    return reply
      .status(500)
      .send(errorBody('internal', 'Internal error; see the server log for the request id.'))
  }
}
