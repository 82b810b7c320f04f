import type { FastifyPluginAsync } from 'fastify'
import type { Core } from '../core/core.ts'

// Placeholder: admin API (issue #2) and usage API (issue #4) register here.
export const apiRoutes: FastifyPluginAsync<{ core: Core }> = async () => {}
