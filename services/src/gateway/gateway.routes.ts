import type { FastifyPluginAsync } from 'fastify'
import type { Core } from '../core/core.ts'

// Placeholder: the gateway routes (issue #2) are built here.
export const gatewayRoutes: FastifyPluginAsync<{ core: Core }> = async () => {}
