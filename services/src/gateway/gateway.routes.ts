import type { ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Core } from '../bootstrap.ts'
import { budgetDenialResponse, type Reservation } from '../budgets/budget-enforcer.ts'
import { worstCase, worstCaseNanos } from '../budgets/worst-case.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { bearerToken } from '../core/identity/auth.ts'
import type { ApiKey, ModelFacade, User } from '../core/identity/entities.ts'
import { modelAllowed } from '../core/identity/model-patterns.ts'
import { createPriceCatalogue } from '../core/pricing/price-catalogue.ts'
import { nanosToUsdString } from '../core/pricing/pricing.ts'
import { normalizeTags, toClickHouseTime, type UsageRow } from '../core/usage/usage-row.ts'
import { endsStream } from './answer-end.ts'
import { authLimitedCounter, journalHoldHistogram, usageSanitizedCounter } from './gateway-metrics.ts'
import { headerText } from './header-text.ts'
import { createModelResolver, type ResolvedModel } from './model-resolver.ts'
import { errorFlavor, providerErrorBody } from './provider-errors.ts'
import { checkBody } from './request-checks.ts'
import { createResponseOwners } from './response-owners.ts'
import {
  BILLED,
  clientHeaders,
  createUpstreams,
  ENDPOINT,
  isAnthropicKind,
  providerServes,
  UPSTREAM_PATH,
  type UpstreamTarget,
  withTargetQuery,
} from './upstreams.ts'
import { sanitizeCounts } from './usage-bounds.ts'
import {
  type ApiKind,
  type CapturedUsage,
  createSseTap,
  emptyUsage,
  estimateTokens,
  requestChars,
  usageFromBody,
} from './usage-capture.ts'

type Json = Record<string, unknown>

interface Caller {
  key: ApiKey
  user: User
  startedAt: number
}

interface ParsedBody {
  raw: Buffer
  json: unknown
}

declare module 'fastify' {
  interface FastifyRequest {
    gatewayCaller: Caller | null
  }
}

const COUNT_FIELDS = ['input', 'output', 'cachedRead', 'cacheWrite', 'reasoning'] as const

/** Non-streamed answers bigger than this are passed on without reading their usage (then estimated). */
const MAX_CAPTURE_BYTES = 16 * 1024 * 1024

/** Response ids remembered for routing their companions (about 100 bytes each). */
const RESPONSE_OWNERS = 50_000

/** Named in the 404 for any other /v1 path. */
const SUPPORTED_ENDPOINTS =
  'POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, POST /v1/responses, ' +
  'GET|DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel, GET /v1/responses/{id}/input_items, ' +
  'GET /v1/models, GET /v1/models/{id}, POST /v1/messages, POST /v1/messages/count_tokens'

/** Endpoints that are forwarded but are not model calls: no row. */
const UNRECORDED = new Set(
  (Object.keys(BILLED) as ApiKind[]).filter((k) => !BILLED[k]).map((k) => ENDPOINT[k]),
)

const AUTH_ERRORS = {
  unknown: 'Unknown API key. Use a virtual key issued by an admin (POST /api/admin/keys).',
  revoked: 'This API key has been revoked. Ask an admin for a new one.',
  expired: 'This API key has expired. Ask an admin to rotate it or issue a new one.',
} as const

function header(request: FastifyRequest, name: string): string {
  const v = request.headers[name]
  const s = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined
  return s ? headerText(s).trim().slice(0, 128) : ''
}

/** A WebSocket (or any protocol) upgrade: refused, so that clients such as the Codex CLI fall back to HTTP. */
function isUpgrade(request: FastifyRequest): boolean {
  const connection = request.headers.connection
  return (
    request.headers.upgrade !== undefined && typeof connection === 'string' && /\bupgrade\b/i.test(connection)
  )
}

/** Our own error, in the envelope of the provider whose API the client speaks (provider-errors.ts). */
function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  details?: unknown,
) {
  return reply
    .code(status)
    .send(providerErrorBody(errorFlavor(request.url, request.headers), status, code, message, details))
}

function errorClassFor(status: number): string {
  if (status === 429) return 'rate_limited'
  if (status >= 500) return 'upstream_5xx'
  if (status >= 400) return 'upstream_4xx'
  return ''
}

/** Resolves once the client can take more, or has gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/**
 * The LLM gateway: OpenAI- and Anthropic-compatible routes that authenticate a
 * virtual key, check budgets, forward to the provider and record one usage row
 * per request. The answer is relayed as it arrives; usage is read from a copy.
 * Prompts, completions and keys are never logged or stored.
 */
export const gatewayRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const upstreams = createUpstreams(core.env)
  const models = createModelResolver({
    facades: core.store,
    catalogue: createPriceCatalogue(),
    passthrough: core.env.MODEL_PASSTHROUGH,
    namedUpstreams: core.env.namedUpstreams,
    // Only with DEMO=true (bootstrap.ts starts it); a simulated facade otherwise gets a 503 saying so.
    simulatorRunning: () => core.simulatedBaseUrl !== undefined,
  })
  const sanitized = usageSanitizedCounter(core.metrics)
  const journalHold = core.journal ? journalHoldHistogram(core.metrics) : undefined
  const responseOwners = createResponseOwners<UpstreamTarget>(RESPONSE_OWNERS)
  const timeoutMs = core.env.UPSTREAM_TIMEOUT_MS
  // Our answers are written on the raw socket, so Fastify cannot mark them
  // `connection: close` while shutting down; without it a keep-alive client
  // would hold the server open until its idle timeout.
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onClose', async () => {
    await upstreams.close()
  })

  // Our own JSON parser: it keeps the raw bytes, forwarded untouched when the
  // body needs no rewrite, and turns bad JSON into a 400 in the house envelope.
  app.removeContentTypeParser(['application/json'])
  const parse = (req: FastifyRequest, raw: Buffer, done: (err: Error | null, body?: ParsedBody) => void) => {
    if (raw.length === 0) return done(null, undefined)
    try {
      done(null, { raw, json: JSON.parse(raw.toString('utf8')) })
    } catch (err) {
      // An unsupported path answers its 404 whatever its body.
      if (req.routeOptions.url === '/v1/*' || req.routeOptions.url === '/v1') return done(null, undefined)
      done(
        new HttpError(
          400,
          'invalid_json',
          `The request body is not valid JSON (${(err as Error).message}). Send a JSON object with content-type application/json.`,
        ),
      )
    }
  }
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parse)
  app.addContentTypeParser('*', { parseAs: 'buffer' }, parse)

  // Gateway errors in the provider's envelope on its routes (hooks included).
  app.setErrorHandler((err, request, reply) => {
    if (err instanceof HttpError) {
      return sendError(request, reply, err.status, err.code, err.message, err.details)
    }
    const e = err as { statusCode?: number; code?: string; message: string }
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(
        request,
        reply,
        413,
        'body_too_large',
        `Request body exceeds ${core.env.MAX_BODY_BYTES} bytes (MAX_BODY_BYTES).`,
      )
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return sendError(request, reply, e.statusCode, e.code ?? 'bad_request', e.message)
    }
    request.log.error({ err }, 'unhandled gateway error')
    return sendError(
      request,
      reply,
      500,
      'internal',
      'Internal error; see the server log for the request id.',
    )
  })

  // A refused upgrade must also close its socket: once a WebSocket server
  // (the API's /api/live) took the connection over, nothing else ends it, and
  // an open socket keeps a SIGTERM'd process from exiting.
  app.addHook('onSend', (request, reply, _payload, done) => {
    if (isUpgrade(request)) reply.header('connection', 'close')
    done()
  })
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket
    if (isUpgrade(request) && socket && !socket.destroyed) {
      socket.once('finish', () => socket.destroy())
      socket.end()
    }
    done()
  })

  app.decorateRequest('gatewayCaller', null)
  // Failed authentications per client address: past the limit, a request
  // without a valid key is refused before its key is even looked up, until
  // the window ends. Valid keys are never counted, so a colleague's broken
  // client behind the same NAT cannot lock anyone else out.
  await app.register(rateLimit, { global: false })
  const authFailures = app.createRateLimit({
    max: core.env.GATEWAY_AUTH_FAILURES_PER_MIN,
    timeWindow: 60_000,
    keyGenerator: (req) => req.ip,
  })
  const authLimited = authLimitedCounter(core.metrics)
  const limitedError = (seconds: number) =>
    new HttpError(
      429,
      'too_many_auth_failures',
      `Too many requests with a missing or invalid API key from this address (more than ${core.env.GATEWAY_AUTH_FAILURES_PER_MIN} a minute). Fix the key, then retry after ${seconds} s.`,
    )
  const failAuth = async (request: FastifyRequest, reply: FastifyReply, error: HttpError): Promise<never> => {
    const r = await authFailures(request)
    if (!r.isAllowed && r.isExceeded) {
      authLimited.inc()
      reply.header('retry-after', String(Math.max(1, r.ttlInSeconds)))
      throw limitedError(Math.max(1, r.ttlInSeconds))
    }
    throw error
  }
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
    const token = bearerToken(request.headers)
    const state = await authFailures(request, { increment: false })
    if (!state.isAllowed && state.isExceeded) {
      const auth = token ? core.store.authenticate(token) : undefined
      if (!auth || 'error' in auth || auth.key.kind !== 'key') {
        authLimited.inc()
        reply.header('retry-after', String(Math.max(1, state.ttlInSeconds)))
        throw limitedError(Math.max(1, state.ttlInSeconds))
      }
    }
    if (!token) {
      return failAuth(
        request,
        reply,
        new HttpError(
          401,
          'missing_api_key',
          'No API key: send your virtual key as Authorization: Bearer <key> or x-api-key: <key>.',
        ),
      )
    }
    const auth = core.store.authenticate(token)
    if ('error' in auth)
      return failAuth(request, reply, new HttpError(401, `${auth.error}_api_key`, AUTH_ERRORS[auth.error]))
    if (auth.key.kind !== 'key') {
      return failAuth(
        request,
        reply,
        new HttpError(
          401,
          'unknown_api_key',
          'This is a web sign-in token, not an API key; use a virtual key.',
        ),
      )
    }
    request.gatewayCaller = { key: auth.key, user: auth.user, startedAt: Date.now() }
    if (isUpgrade(request)) {
      throw new HttpError(
        426,
        'websocket_not_supported',
        'This gateway does not accept WebSocket (or other protocol) upgrades on /v1; send the same request over HTTP, e.g. POST /v1/responses with "stream": true.',
      )
    }
  })

  function newRow(request: FastifyRequest, caller: Caller, kind: ApiKind): UsageRow {
    const started = toClickHouseTime(caller.startedAt)
    return {
      request_id: request.id,
      started_at: started,
      ended_at: started,
      key_id: caller.key.keyId,
      key_prefix: caller.key.keyPrefix,
      user_id: caller.user.userId,
      // The user's team now, not the key's when it was made: moving a user moves their future rows.
      team_id: caller.user.teamId,
      project: header(request, 'x-project'),
      client_app: header(request, 'x-client-app'),
      tags: normalizeTags(header(request, 'x-tags') || undefined),
      provider: '',
      model: '',
      upstream_model: '',
      endpoint: ENDPOINT[kind],
      streamed: false,
      status_code: 0,
      error_class: '',
      input_tokens: 0,
      output_tokens: 0,
      cached_read_tokens: 0,
      cache_write_tokens: 0,
      reasoning_tokens: 0,
      tokens_estimated: false,
      price_unknown: false,
      cost_usd: '0.000000000',
      latency_ms: 0,
      ttft_ms: 0,
      batch_id: '',
    }
  }

  function finishRow(
    row: UsageRow,
    caller: Caller,
    status: number,
    errorClass: string,
  ): Promise<void> | undefined {
    if (UNRECORDED.has(row.endpoint)) return
    const end = Date.now()
    row.ended_at = toClickHouseTime(end)
    row.latency_ms = Math.max(0, end - caller.startedAt)
    row.status_code = status
    row.error_class = errorClass
    // In the journal on return (a crash loses nothing); the promise waits only for a per-answer fsync.
    return core.recorder.recordDurably(row)
  }

  /** Refuses before forwarding; the refusal is recorded like any request. */
  function refuse(row: UsageRow, caller: Caller, error: HttpError): never {
    finishRow(row, caller, error.status, error.code)
    throw error
  }

  // Bodies that could not be read never reach a handler; record them here so
  // that every authenticated request still leaves exactly one row.
  const KIND_BY_URL: Record<string, ApiKind> = Object.fromEntries(
    (Object.keys(ENDPOINT) as ApiKind[]).map((k) => [ENDPOINT[k], k]),
  )
  app.addHook('onError', (request, _reply, error, done) => {
    const caller = request.gatewayCaller
    const kind = KIND_BY_URL[request.routeOptions.url ?? '']
    const code = (error as { code?: string }).code
    if (caller && kind && (code === 'invalid_json' || code === 'FST_ERR_CTP_BODY_TOO_LARGE')) {
      finishRow(
        newRow(request, caller, kind),
        caller,
        code === 'invalid_json' ? 400 : 413,
        code === 'invalid_json' ? 'invalid_json' : 'body_too_large',
      )
    }
    done()
  })

  /** A model in the list / retrieve shape of the API the client speaks. */
  const modelEntry = (m: Pick<ModelFacade, 'model' | 'provider'>, anthropic: boolean) =>
    anthropic
      ? { type: 'model', id: m.model, display_name: m.model, created_at: '1970-01-01T00:00:00Z' }
      : { id: m.model, object: 'model', created: 0, owned_by: m.provider }

  app.get('/v1/models', async (request) => {
    const allowed = request.gatewayCaller!.key.allowedModels
    const facades = core.store.models().filter((m) => modelAllowed(allowed, m.model))
    facades.sort((a, b) => a.model.localeCompare(b.model))
    if (request.headers['anthropic-version']) {
      const data = facades.map((m) => modelEntry(m, true))
      return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
    }
    return { object: 'list', data: facades.map((m) => modelEntry(m, false)) }
  })

  app.get('/v1/models/:id', async (request) => {
    const { id } = request.params as { id: string }
    const anthropic = Boolean(request.headers['anthropic-version'])
    // A facade, or (with passthrough) a model the catalogue knows: what a POST with this name would reach.
    const { model: m, error } = models.resolve(
      id,
      anthropic ? 'messages' : 'chat',
      request.gatewayCaller!.key,
    )
    if (!m || error || (m.via !== 'facade' && m.priceUnknown)) {
      throw new HttpError(
        404,
        'model_not_found',
        `No model "${id.slice(0, 128)}" for this key; GET /v1/models lists the models it may use.`,
      )
    }
    return modelEntry(m, anthropic)
  })

  async function proxy(kind: ApiKind, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const caller = request.gatewayCaller!
    const row = newRow(request, caller, kind)
    const parsed = request.body as ParsedBody | undefined
    if (!parsed)
      refuse(row, caller, new HttpError(400, 'invalid_request', 'A JSON request body is required.'))
    const problem = checkBody(kind, parsed.json)
    const body = parsed.json as Json
    // Facade, alias or passthrough, and its price (gateway/model-resolver.ts).
    const resolution =
      typeof body?.model === 'string' ? models.resolve(body.model, kind, caller.key) : undefined
    if (typeof body?.model === 'string') row.model = body.model.slice(0, 128)
    if (resolution?.model) {
      row.provider = resolution.model.provider
      row.upstream_model = resolution.model.upstreamModel.slice(0, 128)
      row.price_unknown = resolution.model.priceUnknown
    }
    if (problem) refuse(row, caller, new HttpError(400, 'invalid_request', problem))
    if (!resolution)
      refuse(row, caller, new HttpError(400, 'invalid_request', 'A string "model" is required.'))
    if (resolution.error) refuse(row, caller, resolution.error)
    const facade = resolution.model
    if (!providerServes(facade.provider, kind)) {
      const use =
        facade.provider === 'anthropic'
          ? '/v1/messages'
          : '/v1/chat/completions, /v1/responses, /v1/completions or /v1/embeddings'
      refuse(
        row,
        caller,
        new HttpError(
          400,
          'wrong_endpoint',
          `"${facade.model}" is served by ${facade.provider}; call ${use} for it.`,
        ),
      )
    }

    const decision = await core.budgets.reserve({
      key: caller.key,
      user: caller.user,
      model: facade.model,
      // Unbilled kinds (count_tokens) cost nothing but are still refused once a budget is spent.
      worstCaseNanos: BILLED[kind]
        ? worstCaseNanos(
            worstCase(kind, body, parsed.raw.length),
            // The resolved prices: a facade's, or the catalogue's highest tier.
            facade.prices,
            core.env.BUDGET_DEFAULT_RESERVE_USD,
          )
        : 0,
    })
    if (!decision.ok) {
      const denial = budgetDenialResponse(decision)
      finishRow(row, caller, denial.status, denial.body.error.code)
      const { code, message, details } = denial.body.error
      reply.headers(denial.headers)
      sendError(request, reply, denial.status, code, message, details)
      return
    }
    try {
      await forward(kind, request, reply, caller, row, body, parsed.raw, facade, decision.reservation)
    } catch (err) {
      // A failure before forward settled or released: hold nothing until the TTL sweep (a second release is a no-op).
      void core.budgets
        .release(decision.reservation)
        .catch((e) => request.log.error({ err: e, requestId: request.id }, 'budget release failed'))
      throw err
    }
  }

  async function forward(
    kind: ApiKind,
    request: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    row: UsageRow,
    body: Json,
    raw: Buffer,
    facade: ResolvedModel,
    reservation: Reservation,
  ): Promise<void> {
    // The resolver refused a simulated facade when no simulator runs.
    const target = upstreams.target(facade.provider, core.simulatedBaseUrl)!
    const billed = BILLED[kind]
    const streamed = kind !== 'embeddings' && kind !== 'count_tokens' && body.stream === true
    row.streamed = streamed
    // OpenAI chat and completions report stream usage only when asked; ask, and
    // hide the answer's traces from the client. (Responses always report it.)
    const injectUsage =
      streamed &&
      (kind === 'chat' || kind === 'completions') &&
      (body.stream_options as Json | null | undefined)?.include_usage !== true
    let payload: Buffer | string = raw
    if (injectUsage) {
      payload = JSON.stringify({
        ...body,
        model: facade.upstreamModel,
        stream_options: { ...(body.stream_options as Json | undefined), include_usage: true },
      })
    } else if (facade.upstreamModel !== facade.model) {
      payload = JSON.stringify({ ...body, model: facade.upstreamModel })
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', ...target.auth }
    const accept = request.headers.accept
    if (accept) headers.accept = accept
    if (isAnthropicKind(kind)) {
      headers['anthropic-version'] = header(request, 'anthropic-version') || '2023-06-01'
      const beta = header(request, 'anthropic-beta')
      if (beta) headers['anthropic-beta'] = beta
    }
    if (facade.provider === 'simulated') {
      const b = header(request, 'x-fake-behavior')
      if (b) headers['x-fake-behavior'] = b
    }

    const res = reply.raw
    const abort = new AbortController()
    let clientGone = false
    const onClose = () => {
      if (!res.writableFinished) {
        clientGone = true
        abort.abort()
      }
    }
    res.on('close', onClose)

    const usage: CapturedUsage = emptyUsage()
    let up: Awaited<ReturnType<typeof upstreams.agent.request>>
    try {
      up = await upstreams.agent.request({
        origin: target.origin,
        path: withTargetQuery(target, target.basePath + UPSTREAM_PATH[kind]),
        method: 'POST',
        headers,
        body: payload,
        signal: abort.signal,
      })
    } catch (err) {
      res.off('close', onClose)
      void core.budgets.release(reservation).catch(core.backgroundErrors.catcher('budget_release'))
      const code = (err as { code?: string }).code
      if (clientGone) {
        finishRow(row, caller, 499, 'client_disconnected')
        return
      }
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        finishRow(row, caller, 504, 'upstream_timeout')
        sendError(request, reply, 504, 'upstream_timeout', timeoutMessage(facade.provider))
        return
      }
      finishRow(row, caller, 502, 'upstream_unreachable')
      sendError(request, reply, 502, 'upstream_unreachable', unreachableMessage(facade.provider, code))
      return
    }

    reply.hijack()
    const status = up.statusCode
    const ok = status < 400
    const contentType = String(up.headers['content-type'] ?? '')
    const sse = ok && contentType.startsWith('text/event-stream')
    const rewrite = sse && injectUsage
    const tap = sse ? createSseTap(kind, usage, rewrite) : undefined
    const collected: Buffer[] | undefined = ok && !sse ? [] : undefined
    let collectedBytes = 0
    let firstByteAt = 0
    let failure = ''
    // The end of the answer waits until its usage row is in the journal
    // (recordDurably below): a JSON body whole (usage comes from it), a stream
    // from its final event on, anything else its last bytes and the end.
    const held: Buffer[] = []
    let complete = false
    try {
      const outHeaders = clientHeaders(up.headers, request.id, !rewrite)
      if (closing) outHeaders.connection = 'close'
      res.writeHead(status, outHeaders)
      for await (const chunk of up.body as AsyncIterable<Buffer>) {
        const out = tap ? tap.push(chunk) : chunk
        if (collected && collectedBytes <= MAX_CAPTURE_BYTES) {
          collected.push(chunk)
          collectedBytes += chunk.length
        }
        if (!out) continue
        if (firstByteAt === 0) firstByteAt = Date.now()
        const holdWhole = collected !== undefined && collectedBytes <= MAX_CAPTURE_BYTES
        // Too big to hold: pass it on; only its end waits for the row.
        if (!holdWhole && !sse) for (const h of held.splice(0)) if (!res.write(h)) await drained(res)
        if (holdWhole || (sse && (held.length > 0 || endsStream(out)))) held.push(out)
        else if (!res.write(out)) await drained(res)
      }
      const tail = tap?.end()
      if (tail && tail.length > 0) held.push(tail)
      complete = true
    } catch (err) {
      const code = (err as { code?: string }).code
      failure = clientGone
        ? 'client_disconnected'
        : code === 'UND_ERR_BODY_TIMEOUT'
          ? 'upstream_timeout'
          : 'upstream_interrupted'
      up.body.destroy()
      res.destroy()
    }
    if (clientGone && !failure) failure = 'client_disconnected'

    if (collected && collectedBytes > 0 && collectedBytes <= MAX_CAPTURE_BYTES) {
      usageFromBody(kind, Buffer.concat(collected, collectedBytes), usage)
    }
    // Companion calls on this response go back to the upstream that holds it.
    if (ok && usage.responseId && body.store !== false) {
      responseOwners.remember(usage.responseId, { target, userId: caller.user.userId })
    }
    // The provider bills what it produced; where it did not say, estimate.
    // Whatever happens here, the reservation ends in exactly one settle or release.
    let settled = false
    try {
      if (ok && billed) {
        if (!usage.sawInput) {
          usage.input = estimateTokens(requestChars(kind, body))
          row.tokens_estimated = true
        }
        if (!usage.sawOutput && kind !== 'embeddings') {
          usage.output = Math.max(usage.output, estimateTokens(usage.textChars))
          row.tokens_estimated = true
        }
        const clamps = [...usage.clamps, ...sanitizeCounts(usage, COUNT_FIELDS)]
        if (clamps.length > 0) {
          // The counts are now ours, not the provider's: flagged like an estimate, and counted.
          row.tokens_estimated = true
          for (const c of clamps) sanitized.inc({ field: c.field, reason: c.reason })
          request.log.warn(
            {
              requestId: request.id,
              keyPrefix: caller.key.keyPrefix,
              provider: facade.provider,
              model: facade.model,
              clamps,
            },
            'upstream usage out of range; counts clamped',
          )
        }
        row.input_tokens = usage.input
        row.output_tokens = usage.output
        row.cached_read_tokens = usage.cachedRead
        row.cache_write_tokens = usage.cacheWrite
        row.reasoning_tokens = usage.reasoning
        // Reasoning is a part of output (both providers bill it as output and
        // count it in output_tokens): passed as a part, it is not billed twice.
        const nanos = facade.cost(usage)
        row.cost_usd = nanosToUsdString(nanos)
        settled = true
        // Settle adds the actual cost at once, overshoot above the reservation included.
        void core.budgets
          .settle(reservation, nanos)
          .catch((err) => core.backgroundErrors.report('budget_settle', err, { requestId: request.id }))
      }
    } catch (err) {
      request.log.error({ err, requestId: request.id }, 'usage accounting failed; reservation released')
    } finally {
      if (!settled) {
        void core.budgets
          .release(reservation)
          .catch((err) => core.backgroundErrors.report('budget_release', err, { requestId: request.id }))
      }
    }
    if (streamed && firstByteAt > 0) row.ttft_ms = firstByteAt - caller.startedAt
    const finalStatus =
      failure === 'client_disconnected' ? 499 : failure === 'upstream_timeout' ? 504 : failure ? 502 : status
    const holdFrom = performance.now()
    const journaled = finishRow(row, caller, finalStatus, failure || errorClassFor(status))
    if (complete && !failure) {
      // JOURNAL_FSYNC_MS=0 promises the row is on disk before the answer ends. When the
      // fdatasync fails the row is still recorded (in memory, inserted with its batch),
      // but not durable: the answer ends anyway (the upstream was called and billed),
      // and the broken promise is logged with the request id and counted.
      if (journaled) {
        await journaled.catch((err) =>
          core.backgroundErrors.report('journal_sync', err, {
            requestId: request.id,
            detail: 'answered before its usage row was durable',
          }),
        )
      }
      journalHold?.observe((performance.now() - holdFrom) / 1000)
      for (const h of held) if (!res.write(h)) await drained(res)
      res.end()
    }
    res.off('close', onClose)
    if (closing) res.socket?.end()
  }

  const timeoutMessage = (provider: string) =>
    `The upstream provider (${provider}) did not answer within ${timeoutMs} ms (UPSTREAM_TIMEOUT_MS). Retry later, or raise the limit.`
  const unreachableMessage = (provider: string, code: string | undefined) =>
    `Could not reach the upstream provider (${provider}): ${code ?? 'connection failed'}.`

  /**
   * A Responses API companion (retrieve, delete, cancel, input items): relayed
   * as is to the upstream that created the response. Not a model call, so no
   * row and no budget; the provider's answer and errors pass through.
   */
  async function companion(request: FastifyRequest, reply: FastifyReply, suffix: string): Promise<void> {
    const caller = request.gatewayCaller!
    const { id } = request.params as { id: string }
    const owner = responseOwners.lookup(id)
    if (owner && owner.userId !== caller.user.userId) {
      throw new HttpError(
        404,
        'response_not_found',
        `No response "${id.slice(0, 128)}" for this key; responses are reachable only by the user who created them.`,
      )
    }
    const target = owner?.target ?? upstreams.target('openai', undefined)!
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : ''
    const headers: Record<string, string> = { ...target.auth }
    const accept = request.headers.accept
    if (accept) headers.accept = accept
    const parsed = request.body as ParsedBody | undefined
    if (parsed) headers['content-type'] = 'application/json'
    const abort = new AbortController()
    const onClose = () => abort.abort()
    reply.raw.on('close', onClose)
    let up: Awaited<ReturnType<typeof upstreams.agent.request>>
    try {
      up = await upstreams.agent.request({
        origin: target.origin,
        path: withTargetQuery(
          target,
          `${target.basePath}/responses/${encodeURIComponent(id)}${suffix}${query}`,
        ),
        method: request.method as 'GET' | 'POST' | 'DELETE',
        headers,
        body: parsed?.raw,
        signal: abort.signal,
      })
    } catch (err) {
      reply.raw.off('close', onClose)
      const code = (err as { code?: string }).code
      if (abort.signal.aborted) {
        // The client went away before the upstream answered: nobody to answer.
        request.log.debug({ requestId: request.id }, 'response companion: client gone')
        reply.hijack()
        return
      }
      if (code === 'UND_ERR_HEADERS_TIMEOUT') {
        return void sendError(request, reply, 504, 'upstream_timeout', timeoutMessage('openai'))
      }
      request.log.warn({ err, requestId: request.id }, 'response companion: upstream unreachable')
      return void sendError(request, reply, 502, 'upstream_unreachable', unreachableMessage('openai', code))
    }
    reply.hijack()
    const outHeaders = clientHeaders(up.headers, request.id, true)
    if (closing) outHeaders.connection = 'close'
    reply.raw.writeHead(up.statusCode, outHeaders)
    try {
      await pipeline(up.body, reply.raw)
    } catch (err) {
      // The client went away or the upstream broke off; either way both ends are closed now.
      request.log.debug({ err, requestId: request.id }, 'response companion relay ended early')
    } finally {
      reply.raw.off('close', onClose)
    }
  }

  app.post('/v1/chat/completions', (request, reply) => proxy('chat', request, reply))
  app.post('/v1/completions', (request, reply) => proxy('completions', request, reply))
  app.post('/v1/embeddings', (request, reply) => proxy('embeddings', request, reply))
  app.post('/v1/responses', (request, reply) => proxy('responses', request, reply))
  app.get('/v1/responses/:id', (request, reply) => companion(request, reply, ''))
  app.delete('/v1/responses/:id', (request, reply) => companion(request, reply, ''))
  app.post('/v1/responses/:id/cancel', (request, reply) => companion(request, reply, '/cancel'))
  app.get('/v1/responses/:id/input_items', (request, reply) => companion(request, reply, '/input_items'))
  app.post('/v1/messages', (request, reply) => proxy('messages', request, reply))
  app.post('/v1/messages/count_tokens', (request, reply) => proxy('count_tokens', request, reply))

  // Any other /v1 path, after authentication: a 404 naming what is served,
  // recorded as a refusal so admins can see which clients call what.
  const unknownEndpoint = async (request: FastifyRequest) => {
    const caller = request.gatewayCaller!
    const path = request.url.split('?')[0]!
    const row = newRow(request, caller, 'chat')
    row.endpoint = path.slice(0, 128)
    refuse(
      row,
      caller,
      new HttpError(
        404,
        'unknown_endpoint',
        `${request.method} ${path.slice(0, 128)} is not served by this gateway. Supported: ${SUPPORTED_ENDPOINTS}.`,
      ),
    )
  }
  app.all('/v1', unknownEndpoint)
  app.all('/v1/*', unknownEndpoint)
}
