import { adminSettingsBody, adminSettingsResponse } from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Core } from '../bootstrap.ts'
import { readSettings, writeSettings } from './admin-settings.ts'
import { requireRole } from './auth.plugin.ts'
import { responses } from './route-schemas.ts'

/**
 * GET / PUT /api/admin/settings (admins): organisation-wide settings, for
 * now who sees the leaderboard. A PUT changes only the settings it names.
 */
export const settingsRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  // Before validation: a non-admin hears 403, not which field of the body was wrong.
  const adminOnly = { preValidation: requireRole('admin') }
  const doc = (summary: string) => ({ tags: ['admin'], summary })
  app.get(
    '/settings',
    {
      ...adminOnly,
      schema: { ...doc('Organisation-wide settings'), response: responses(adminSettingsResponse) },
    },
    async () => ({
      settings: readSettings(core.store),
    }),
  )
  app.put(
    '/settings',
    {
      ...adminOnly,
      schema: {
        ...doc('Change the settings it names'),
        body: adminSettingsBody,
        response: responses(adminSettingsResponse),
      },
    },
    async (request) => ({ settings: await writeSettings(core.store, request.body) }),
  )
}
