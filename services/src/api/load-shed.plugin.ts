import underPressure from '@fastify/under-pressure'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { Core } from '../bootstrap.ts'
import { errorBody } from '../core/errors/http-error.ts'

/** Dashboard reads: what waits when the process is overloaded, so the gateway keeps its share. */
function deferrable(request: FastifyRequest): boolean {
  if (request.method !== 'GET') return false
  const path = request.url.split('?')[0]!
  return !path.startsWith('/api/admin') && path !== '/api/me' && path !== '/api/openapi.json'
}

/**
 * Load shedding for the API (registered inside /api only, so it never refuses
 * gateway traffic): while the event loop's mean delay over the last second is
 * above LOAD_SHED_EVENT_LOOP_DELAY_MS, dashboard queries and new live
 * subscriptions get a 503 with Retry-After, and live refreshes of views that
 * already have numbers wait. Admin writes, sign-in and /api/me still pass.
 */
export const loadShedPlugin = fp<{ core: Core }>(
  async (app, { core }) => {
    const name = 'tokenmeter_load_shed_total'
    core.metrics.removeSingleMetric(name)
    const shed = new Counter({
      name,
      help: 'API requests and live subscriptions refused while the process was overloaded',
      labelNames: ['what'],
      registers: [core.metrics],
    })
    await app.register(underPressure, {
      maxEventLoopDelay: core.env.LOAD_SHED_EVENT_LOOP_DELAY_MS,
      // under-pressure sends what the handler returns (its types say void); undefined lets the request on.
      pressureHandler: ((
        request: FastifyRequest,
        reply: FastifyReply,
        type: string,
        value: number | undefined,
      ) => {
        if (!deferrable(request)) return undefined
        shed.inc({ what: request.url.startsWith('/api/live') ? 'live_handshake' : 'query' })
        reply.code(503).header('retry-after', '2')
        return errorBody(
          'overloaded',
          `The server is overloaded (${type} ${Math.round(Number(value))}); dashboard queries are paused so API traffic keeps flowing. Retry in a few seconds.`,
        )
      }) as never,
    })
    app.decorate('countShed', (what: string) => shed.inc({ what }))
  },
  { name: 'tokenmeter-load-shed' },
)

declare module 'fastify' {
  interface FastifyInstance {
    countShed?: (what: string) => void
  }
}
