import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync } from 'fastify'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { adminRoutes } from './admin.routes.ts'
import { authPlugin } from './auth.plugin.ts'
import { budgetsRoutes } from './budgets.routes.ts'
import { liveRoutes } from './live.routes.ts'
import { loadShedPlugin } from './load-shed.plugin.ts'
import { opsRoutes } from './ops.routes.ts'
import { useRouteSchemas } from './route-schemas.ts'
import { selfServiceRoutes } from './self-service.routes.ts'
import { sessionRoutes } from './session.routes.ts'
import { settingsRoutes } from './settings.routes.ts'
import { usageRoutes } from './usage.routes.ts'

/** Everything under /api: zod route schemas and their OpenAPI document, auth, then each area in its own plugin. */
export const apiRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  await useRouteSchemas(app)
  // Limits per client address (request.ip, which follows TRUST_PROXY): only
  // routes that ask for one (POST /session) and failed authentication (auth.plugin.ts).
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new HttpError(
        429,
        'rate_limited',
        `Too many attempts from this address; wait ${Math.ceil(Number(context.ttl) / 1000)} s and try again.`,
      ),
  })
  await app.register(loadShedPlugin, { core })
  await app.register(authPlugin, { core })
  await app.register(sessionRoutes, { core })
  await app.register(usageRoutes, { core })
  await app.register(liveRoutes, { core })
  await app.register(selfServiceRoutes, { core })
  await app.register(adminRoutes, { core, prefix: '/admin' })
  await app.register(budgetsRoutes, { core, prefix: '/admin' })
  await app.register(settingsRoutes, { core, prefix: '/admin' })
  await app.register((await import('./budget-status.routes.ts')).budgetStatusRoutes, { core })
  await app.register((await import('./alerts.routes.ts')).alertsRoutes, { core })
  await app.register(opsRoutes, { core, prefix: '/admin/ops' })
}
