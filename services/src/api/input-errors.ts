import type { z } from 'zod'
import { HttpError } from '../core/errors/http-error.ts'

/**
 * The one mapping from "the caller sent something the schema refuses" to the
 * house 400: route schemas (through the app's error handler), WebSocket
 * messages and the admin bodies all end here, so one kind of fault has one
 * code and a message that names what to fix.
 *   query / params: unknown_parameter | invalid_parameter, details name the parameter(s)
 *   body:           invalid_body, every field's complaint in one sentence
 */
export type InputSource = 'query' | 'params' | 'body'

export interface InputIssue {
  code: string
  path: readonly PropertyKey[]
  message: string
  keys?: readonly string[]
}

export function invalidInput(issues: readonly InputIssue[], source: InputSource, what?: string): HttpError {
  if (source === 'body') {
    const list = issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : 'body'}: ${i.message}`)
    return new HttpError(400, 'invalid_body', `Invalid ${what ?? 'body'}: ${list.join('; ')}.`)
  }
  const issue = issues[0]
  if (issue?.code === 'unrecognized_keys' && issue.keys) {
    const names = issue.keys.map((k) => `"${k}"`).join(', ')
    return new HttpError(400, 'unknown_parameter', `Unknown parameter ${names}; see /api/openapi.json.`, {
      parameters: issue.keys,
    })
  }
  const name = String(issue?.path[0] ?? what ?? source)
  return new HttpError(400, 'invalid_parameter', `Invalid parameter "${name}": ${issue?.message}.`, {
    parameter: name,
  })
}

/** Parses with a zod schema where no route schema applies (WebSocket messages, hand-parsed bodies). */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  source: InputSource,
  what?: string,
): z.output<S> {
  const r = schema.safeParse(value ?? {})
  if (r.success) return r.data
  throw invalidInput(r.error.issues as InputIssue[], source, what)
}

/** Fastify's validation error (from fastify-type-provider-zod's validator) as zod-like issues. */
export function issuesOfValidation(
  validation: readonly { keyword: string; instancePath: string; message?: string; params?: unknown }[],
): InputIssue[] {
  return validation.map((v) => ({
    code: v.keyword,
    path: v.instancePath.split('/').filter(Boolean),
    message: v.message ?? 'invalid',
    keys: (v.params as { keys?: string[] } | undefined)?.keys,
  }))
}
