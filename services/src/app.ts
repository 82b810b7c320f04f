import helmet from '@fastify/helmet'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Core } from './bootstrap.ts'
import type { ProcessRole } from './core/config/env.ts'
import { errorBody, HttpError } from './core/errors/http-error.ts'
import { bearerToken, safeEqual } from './core/identity/auth.ts'
import { createErrorHandler } from './error-handler.ts'
import { securityHeaders } from './security-headers.ts'
import { WEB_BUILD_DIR } from './web.routes.ts'

export type Role = ProcessRole

export interface AppOptions {
  /** Which routes to mount; default: the Core's roles (ROLES). */
  roles?: Role[]
  logger?: boolean | object
  /** A ready pino logger shared with the rest of the process (server.ts). */
  loggerInstance?: FastifyBaseLogger
}

/**
 * Builds the HTTP app for the given roles over a ready Core. Never listens:
 * server.ts does (through bootstrap.ts), tests use `app.inject` or listen on port 0 themselves.
 */
export async function buildApp(core: Core, opts: AppOptions = {}): Promise<FastifyInstance> {
  const roles: ReadonlySet<Role> = opts.roles ? new Set(opts.roles) : core.roles
  const app = Fastify({
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    bodyLimit: core.env.MAX_BODY_BYTES,
    // Request ids are ours (UUIDs) and go back to the client in x-request-id.
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: false,
    // Behind a TLS proxy: client address and https from X-Forwarded-* (TRUST_PROXY).
    // A hop count n trusts the n proxies nearest to us (Fastify's numeric form).
    trustProxy:
      typeof core.env.TRUST_PROXY === 'number'
        ? (
            (hops: number) => (_address: string, hop: number) =>
              hop < hops
          )(core.env.TRUST_PROXY)
        : core.env.TRUST_PROXY,
  })
  await app.register(helmet, securityHeaders(WEB_BUILD_DIR))

  app.setErrorHandler(createErrorHandler({ maxBodyBytes: core.env.MAX_BODY_BYTES }))
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(errorBody('not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`)),
  )

  app.get('/healthz', async () => ({ ok: true }))
  // /healthz: the process is alive. /readyz: send it traffic. The API cannot
  // answer without ClickHouse; the gateway can (rows spill), so for a
  // gateway-only process ClickHouse is reported but does not decide. While
  // shutting down, Fastify itself answers 503 (return503OnClosing).
  app.get('/readyz', async (_req, reply) => {
    const clickhouse = await core.warehouse.ping()
    const needsClickHouse = roles.has('api')
    const ready = clickhouse || !needsClickHouse
    return reply
      .status(ready ? 200 : 503)
      .send({ ok: ready, clickhouse, ...(ready ? {} : { reason: 'ClickHouse is unreachable' }) })
  })
  // Metrics name keys, teams and volumes: a scraper sends METRICS_TOKEN (or ADMIN_TOKEN).
  app.get('/metrics', async (request, reply) => {
    const token = bearerToken(request.headers)
    const allowed =
      token !== undefined &&
      (safeEqual(token, core.adminToken) ||
        (!!core.env.METRICS_TOKEN && safeEqual(token, core.env.METRICS_TOKEN)))
    if (!allowed) {
      throw new HttpError(
        401,
        'unauthenticated',
        'GET /metrics needs Authorization: Bearer <METRICS_TOKEN> (set METRICS_TOKEN for your scraper).',
      )
    }
    reply.header('content-type', core.metrics.contentType)
    return core.metrics.metrics()
  })

  if (roles.has('gateway')) {
    const { gatewayRoutes } = await import('./gateway/gateway.routes.ts')
    await app.register(gatewayRoutes, { core })
  }
  if (roles.has('api')) {
    const { apiRoutes } = await import('./api/api.routes.ts')
    await app.register(apiRoutes, { core, prefix: '/api' })
  }
  if (roles.has('web')) {
    const { webRoutes } = await import('./web.routes.ts')
    await app.register(webRoutes, { core })
  }
  return app
}
