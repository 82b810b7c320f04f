import type { FastifyPluginAsync } from 'fastify'
import type { Core } from '../core/core.ts'

// Placeholder, filled in by its owner.
export const usageRoutes: FastifyPluginAsync<{ core: Core }> = async () => {}
