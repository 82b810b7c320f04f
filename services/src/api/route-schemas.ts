import swagger, { type SwaggerTransform } from '@fastify/swagger'
import { errorResponse } from '@tokenmeter/contract'
import type { FastifyInstance } from 'fastify'
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { z } from 'zod'

/**
 * Routes under /api declare their zod schemas (querystring, body, params,
 * response) as Fastify route schemas: the validator parses the request with
 * them, the serializer checks every answer against the declared response (a
 * mismatch is a 500 and a logged error, never a silently different answer),
 * and @fastify/swagger builds /api/openapi.json from the same routes. Every
 * route has tags (usage, session, admin, budgets, alerts, ops); a route without
 * them is left out of the document, which tests/api-contract.test.ts refuses.
 * Encapsulated: the gateway's /v1 routes are pass-through and untouched.
 */
export async function useRouteSchemas(app: FastifyInstance): Promise<FastifyInstance> {
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // Repeated parameters (?keys=a&keys=b) mean the same as a comma-separated list.
  app.addHook('preValidation', async (request) => {
    const q = request.query as Record<string, unknown> | undefined
    if (!q || typeof q !== 'object') return
    for (const [k, v] of Object.entries(q)) if (Array.isArray(v)) q[k] = v.join(',')
  })
  await app.register(swagger, {
    hideUntagged: true,
    transform: jsonSchemaTransform,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tokenmeter API',
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
    },
  })
  return app
}

const refusals = {
  400: errorResponse.describe('Unknown or malformed parameter or body (the message names it)'),
  401: errorResponse.describe('Not signed in'),
  403: errorResponse.describe('Role or filter outside your scope'),
}

/** The answers a signed-in route can give: its own on 200, the error envelope otherwise. */
export function responses<T extends z.ZodType>(ok: T) {
  return { 200: ok, ...refusals }
}

/** The answers of a route that creates something: its own on 201, the error envelope otherwise. */
export function created<T extends z.ZodType>(ok: T) {
  return { 201: ok, ...refusals }
}

/** The answers of a route that deletes and says nothing more. */
export const deleted = { 204: z.undefined().describe('Deleted; no body'), ...refusals }

/** A 404 (or other refusal) a route documents beside the common ones, with when it happens. */
export const refusal = (description: string) => errorResponse.describe(description)

/**
 * @fastify/websocket hides upgrade routes from the document; /api/live is
 * part of the API, so its route is documented from its own schema anyway.
 */
export const documentWebSocket: { swaggerTransform: SwaggerTransform } = {
  swaggerTransform: (doc) => jsonSchemaTransform({ ...doc, schema: { ...doc.schema, hide: false } }),
}
