import type { FastifyPluginAsync } from 'fastify'
import type { Core } from './core/core.ts'

// Placeholder: serves the built SvelteKit dashboard (issue #5).
export const webRoutes: FastifyPluginAsync<{ core: Core }> = async () => {}
