import websocket from '@fastify/websocket'
import { errorResponse, filterSchema, liveClientMessage, liveServerMessage } from '@tokenmeter/contract'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import type { Principal } from '../core/identity/auth.ts'
import { originAllowed, principalFromCredential, requireRole } from './auth.plugin.ts'
import { assertInScope, type ParsedFilter, resolveFilter, type Scope, scopeFor, scopeKey } from './filters.ts'
import { parseInput } from './input-errors.ts'
import { createLiveHub, type LiveHub } from './live-hub.ts'
import { createLiveQuota } from './live-quota.ts'
import { documentWebSocket } from './route-schemas.ts'

/** WebSocket close code for "your credential is no longer valid" (4000-4999 are ours). */
const CLOSE_REVOKED = 4401
/** Close code for "over your share": too many sockets, or subscribing too fast for too long. */
export const CLOSE_TOO_MANY = 4429
const RECHECK_MS = 1_000
/** Refused subscribes in a row after which the socket is closed rather than answered. */
const MAX_STRIKES = 20

declare module 'fastify' {
  interface FastifyRequest {
    liveFilter?: ParsedFilter
  }
}

/**
 * GET /api/live: authenticated and Origin-checked at the handshake (so a
 * refused upgrade is a plain HTTP 401/403/400), then one subscription per
 * socket to the shared hub. The credential is re-checked every second; a
 * revoked or changed one closes the socket with 4401.
 */
export const liveRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } })
  const overloaded = () => (app.hasDecorator('isUnderPressure') ? app.isUnderPressure() : false)
  const hub = createLiveHub({
    warehouse: core.warehouse,
    store: core.store,
    recorder: core.rowFeed,
    maxRefreshes: core.env.LIVE_MAX_REFRESHES,
    underPressure: overloaded,
    log: core.log.child({ module: 'live' }),
  })
  app.addHook('onClose', async () => hub.close())
  const subscribes = registerLiveMetrics(core, hub)
  const quota = createLiveQuota({
    maxSockets: core.env.LIVE_MAX_SOCKETS_PER_USER,
    perSec: core.env.LIVE_SUBSCRIBES_PER_SEC,
    burst: core.env.LIVE_SUBSCRIBE_BURST,
  })
  // The bootstrap admin token has no user: its sockets share one allowance.
  const shareOf = (p: Principal) => p.userId || `${p.via}:${p.credentialId}`

  const checkFilter = (
    principal: Principal,
    parsed: ParsedFilter,
  ): { parsed: ParsedFilter; scope: Scope } => {
    const f = resolveFilter(parsed)
    const scope = scopeFor(principal, core.store)
    assertInScope(scope, f.lists, core.store)
    return { parsed, scope }
  }

  app.get(
    '/live',
    {
      websocket: true,
      config: documentWebSocket,
      schema: {
        tags: ['live'],
        summary:
          'WebSocket (upgrade). Same filters as /api/kpis. Server sends x-server-messages; the client may send x-client-messages to change its filter. Closes with 4401 when the credential is revoked.',
        querystring: filterSchema,
        response: {
          101: z.undefined().describe('Switching protocols'),
          400: errorResponse,
          401: errorResponse,
          403: errorResponse,
        },
        'x-server-messages': z.toJSONSchema(liveServerMessage, { io: 'output' }),
        'x-client-messages': z.toJSONSchema(liveClientMessage, { io: 'input' }),
      },
      // Who and from where before the filter is validated: a stranger hears 401/403, not which parameter was wrong.
      preValidation: [
        requireRole(),
        async (request: FastifyRequest) => {
          if (!originAllowed(request.headers.origin, request.headers.host, core.env.ALLOWED_ORIGINS)) {
            throw new HttpError(
              403,
              'forbidden_origin',
              'This Origin may not open the live socket (ALLOWED_ORIGINS).',
            )
          }
          // Over the user's share: refused before the upgrade, the cheapest answer there is.
          const user = shareOf(request.principal!)
          if (quota.sockets(user) >= core.env.LIVE_MAX_SOCKETS_PER_USER) {
            subscribes.inc({ outcome: 'too_many_sockets' })
            throw new HttpError(
              429,
              'too_many_live_sockets',
              `At most ${core.env.LIVE_MAX_SOCKETS_PER_USER} live sockets per user (LIVE_MAX_SOCKETS_PER_USER); close one first.`,
            )
          }
          if (!quota.trySubscribe(user)) {
            subscribes.inc({ outcome: 'rate_limited' })
            throw new HttpError(429, 'rate_limited', 'Subscribing too fast; reconnect in a few seconds.')
          }
        },
      ],
      preHandler: async (request: FastifyRequest) => {
        request.liveFilter = checkFilter(request.principal!, request.query as ParsedFilter).parsed
      },
    },
    (socket, request) => {
      const principal = request.principal!
      const user = shareOf(principal)
      // Handshakes that passed the pre-upgrade check together can still overshoot; this one is exact.
      if (!quota.openSocket(user)) {
        subscribes.inc({ outcome: 'too_many_sockets' })
        socket.close(
          CLOSE_TOO_MANY,
          `at most ${core.env.LIVE_MAX_SOCKETS_PER_USER} live sockets per user (LIVE_MAX_SOCKETS_PER_USER)`,
        )
        return
      }
      socket.on('close', () => quota.closeSocket(user))
      subscribes.inc({ outcome: 'accepted' })
      let strikes = 0
      let scope = scopeFor(principal, core.store)
      let parsed = request.liveFilter!
      const sub = {
        send: (m: string) => socket.send(m),
        bufferedAmount: () => socket.bufferedAmount,
      }
      let unsubscribe = hub.subscribe(parsed, scope, sub)
      const resubscribe = () => {
        unsubscribe()
        unsubscribe = hub.subscribe(parsed, scope, sub)
      }
      const sendError = (code: string, message: string) =>
        socket.send(JSON.stringify({ type: 'error', error: { code, message } }))

      const recheck = setInterval(() => {
        const now = principalFromCredential(core, principal.credentialId, principal.via)
        if (
          !now ||
          now.role !== principal.role ||
          now.teamId !== principal.teamId ||
          now.userId !== principal.userId
        ) {
          socket.close(CLOSE_REVOKED, 'credential revoked')
          return
        }
        // A member's key list can grow; the subscription follows the current scope.
        const current = scopeFor(now, core.store)
        if (scopeKey(current) !== scopeKey(scope)) {
          scope = current
          resubscribe()
        }
      }, RECHECK_MS)

      socket.on('message', (data: Buffer) => {
        try {
          let json: unknown
          try {
            json = JSON.parse(data.toString())
          } catch {
            throw new HttpError(
              400,
              'invalid_message',
              'Messages are JSON: {"type":"subscribe","filters":{...}}.',
            )
          }
          const msg = parseInput(liveClientMessage, json, 'body', 'message')
          if (overloaded()) {
            subscribes.inc({ outcome: 'overloaded' })
            throw new HttpError(
              503,
              'overloaded',
              'The server is overloaded; your current view keeps updating. Change filters again in a few seconds.',
            )
          }
          if (!quota.trySubscribe(user)) {
            subscribes.inc({ outcome: 'rate_limited' })
            if (++strikes >= MAX_STRIKES) {
              socket.close(CLOSE_TOO_MANY, 'subscribing too fast')
              return
            }
            throw new HttpError(
              429,
              'rate_limited',
              `At most ${core.env.LIVE_SUBSCRIBES_PER_SEC} filter changes per second per user (burst ${core.env.LIVE_SUBSCRIBE_BURST}); this one was not applied, send it again shortly.`,
            )
          }
          strikes = 0
          subscribes.inc({ outcome: 'accepted' })
          const next = checkFilter(principal, parseInput(filterSchema, msg.filters, 'query'))
          parsed = next.parsed
          scope = next.scope
          resubscribe()
        } catch (err) {
          if (err instanceof HttpError) sendError(err.code, err.message)
          else sendError('internal', 'Could not change the subscription.')
        }
      })
      socket.on('close', () => {
        clearInterval(recheck)
        unsubscribe()
      })
    },
  )
}

/** Shared topics vs subscribers shows whether identical filters really share one computation. */
function registerLiveMetrics(core: Core, hub: LiveHub): Counter<'outcome'> {
  const gauges = [
    ['tokenmeter_live_topics', 'Distinct live filter+scope computations', 'topics'],
    ['tokenmeter_live_subscribers', 'Open live WebSocket subscriptions', 'subscribers'],
    [
      'tokenmeter_live_pending_rows',
      'Recorded rows shown live but not yet confirmed in ClickHouse',
      'pendingRows',
    ],
    ['tokenmeter_live_refreshes_running', 'Live view refreshes reading ClickHouse now', 'refreshesRunning'],
    ['tokenmeter_live_refreshes_queued', 'Live view refreshes waiting for a slot', 'refreshesQueued'],
    [
      'tokenmeter_live_refreshes_started_total',
      'Live view refreshes started since start',
      'refreshesStarted',
    ],
    [
      'tokenmeter_live_pushes',
      'Live snapshots sent to sockets since start; unchanged data is not sent',
      'pushes',
    ],
  ] as const
  for (const [name, help, field] of gauges) {
    core.metrics.removeSingleMetric(name)
    new Gauge({
      name,
      help,
      registers: [core.metrics],
      collect() {
        this.set(hub.stats()[field])
      },
    })
  }
  const name = 'tokenmeter_live_subscribes_total'
  core.metrics.removeSingleMetric(name)
  return new Counter({
    name,
    help: 'Live subscriptions (socket opens and filter changes) by outcome: accepted, too_many_sockets, rate_limited, overloaded',
    labelNames: ['outcome'],
    registers: [core.metrics],
  })
}
