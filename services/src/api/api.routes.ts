import type { FastifyPluginAsync } from 'fastify'
import type { Core } from '../core/core.ts'
import { adminRoutes } from './admin.routes.ts'
import { authPlugin } from './auth.plugin.ts'
import { budgetsRoutes } from './budgets.routes.ts'
import { liveRoutes } from './live.routes.ts'
import { loadShedPlugin } from './load-shed.plugin.ts'
import { opsRoutes } from './ops.routes.ts'
import { sessionRoutes } from './session.routes.ts'
import { usageRoutes } from './usage.routes.ts'

/** Everything under /api: auth first, then each area in its own plugin. */
export const apiRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  await app.register(loadShedPlugin, { core })
  await app.register(authPlugin, { core })
  await app.register(sessionRoutes, { core })
  await app.register(usageRoutes, { core })
  await app.register(liveRoutes, { core })
  await app.register(adminRoutes, { core, prefix: '/admin' })
  await app.register(budgetsRoutes, { core, prefix: '/admin' })
  await app.register((await import('./budget-status.routes.ts')).budgetStatusRoutes, { core })
  await app.register((await import('./alerts.routes.ts')).alertsRoutes, { core })
  await app.register(opsRoutes, { core, prefix: '/admin/ops' })
}
