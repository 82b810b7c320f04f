import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { budgetDenialResponse, type Reservation } from '../budgets/budget-enforcer.ts'
import { bearerToken } from '../core/auth.ts'
import type { Core } from '../core/core.ts'
import type { ApiKey, ModelFacade, User } from '../core/entities.ts'
import { errorBody, HttpError } from '../core/errors.ts'
import { costNanos, nanosToUsdString } from '../core/pricing.ts'
import { normalizeTags, toClickHouseTime, type UsageRow } from '../core/usage-row.ts'
import { createFakeUpstream, type FakeUpstream } from '../simulator/fake-upstream.ts'
import { endsStream } from './answer-end.ts'
import { checkBody, maxOutputTokens } from './request-checks.ts'
import { clientHeaders, createUpstreams, ENDPOINT, providerServes, UPSTREAM_PATH } from './upstreams.ts'
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

/** Non-streamed answers bigger than this are passed on without reading their usage (then estimated). */
const MAX_CAPTURE_BYTES = 16 * 1024 * 1024

const AUTH_ERRORS = {
  unknown: 'Unknown API key. Use a virtual key issued by an admin (POST /api/admin/keys).',
  revoked: 'This API key has been revoked. Ask an admin for a new one.',
  expired: 'This API key has expired. Ask an admin to rotate it or issue a new one.',
} as const

function header(request: FastifyRequest, name: string): string {
  const v = request.headers[name]
  const s = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined
  return s ? s.trim().slice(0, 128) : ''
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
  const timeoutMs = core.env.UPSTREAM_TIMEOUT_MS
  // A stack built without server.ts (tests, scripts) still gets a simulated provider.
  let ownSimulator: Promise<FakeUpstream> | undefined
  const simulatedBaseUrl = async (): Promise<string> => {
    if (core.simulatedBaseUrl) return core.simulatedBaseUrl
    ownSimulator ??= createFakeUpstream()
    return `${(await ownSimulator).url}/v1`
  }
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
    if (ownSimulator) await (await ownSimulator).close()
  })

  // Our own JSON parser: it keeps the raw bytes, forwarded untouched when the
  // body needs no rewrite, and turns bad JSON into a 400 in the house envelope.
  app.removeContentTypeParser(['application/json'])
  const parse = (_req: FastifyRequest, raw: Buffer, done: (err: Error | null, body?: ParsedBody) => void) => {
    if (raw.length === 0) return done(null, undefined)
    try {
      done(null, { raw, json: JSON.parse(raw.toString('utf8')) })
    } catch (err) {
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

  app.decorateRequest('gatewayCaller', null)
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    const token = bearerToken(request.headers)
    if (!token) {
      return done(
        new HttpError(
          401,
          'missing_api_key',
          'No API key: send your virtual key as Authorization: Bearer <key> or x-api-key: <key>.',
        ),
      )
    }
    const auth = core.store.authenticate(token)
    if ('error' in auth) return done(new HttpError(401, `${auth.error}_api_key`, AUTH_ERRORS[auth.error]))
    if (auth.key.kind !== 'key') {
      return done(
        new HttpError(
          401,
          'unknown_api_key',
          'This is a web sign-in token, not an API key; use a virtual key.',
        ),
      )
    }
    request.gatewayCaller = { key: auth.key, user: auth.user, startedAt: Date.now() }
    done()
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
      team_id: caller.key.teamId || caller.user.teamId,
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
      tokens_estimated: false,
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
  const KIND_BY_URL: Record<string, ApiKind> = {
    '/v1/chat/completions': 'chat',
    '/v1/embeddings': 'embeddings',
    '/v1/messages': 'messages',
  }
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

  app.get('/v1/models', async (request) => {
    const allowed = request.gatewayCaller!.key.allowedModels
    const models = core.store.models().filter((m) => allowed.length === 0 || allowed.includes(m.model))
    models.sort((a, b) => a.model.localeCompare(b.model))
    if (request.headers['anthropic-version']) {
      const data = models.map((m) => ({
        type: 'model',
        id: m.model,
        display_name: m.model,
        created_at: '1970-01-01T00:00:00Z',
      }))
      return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
    }
    return {
      object: 'list',
      data: models.map((m) => ({ id: m.model, object: 'model', created: 0, owned_by: m.provider })),
    }
  })

  async function proxy(kind: ApiKind, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const caller = request.gatewayCaller!
    const row = newRow(request, caller, kind)
    const parsed = request.body as ParsedBody | undefined
    if (!parsed)
      refuse(row, caller, new HttpError(400, 'invalid_request', 'A JSON request body is required.'))
    const problem = checkBody(kind, parsed.json)
    const body = parsed.json as Json
    const facade = typeof body?.model === 'string' ? core.store.model(body.model) : undefined
    if (typeof body?.model === 'string') row.model = body.model.slice(0, 128)
    if (facade) {
      row.provider = facade.provider
      row.upstream_model = facade.upstreamModel
    }
    if (problem) refuse(row, caller, new HttpError(400, 'invalid_request', problem))
    if (!facade) {
      const available = core.store.models().map((m) => m.model)
      refuse(
        row,
        caller,
        new HttpError(
          400,
          'unknown_model',
          `Unknown model "${row.model}". Available: ${available.join(', ') || 'none yet'}. ` +
            `An admin adds a model with PUT /api/admin/models/${encodeURIComponent(row.model)} ` +
            '{ "provider", "upstreamModel", "inputPerM", "outputPerM" }.',
          { available },
        ),
      )
    }
    const allowed = caller.key.allowedModels
    if (allowed.length > 0 && !allowed.includes(facade.model)) {
      refuse(
        row,
        caller,
        new HttpError(
          403,
          'model_not_allowed',
          `This key may not use "${facade.model}"; it is limited to: ${allowed.join(', ')}.`,
        ),
      )
    }
    if (!providerServes(facade.provider, kind)) {
      const use = facade.provider === 'anthropic' ? '/v1/messages' : '/v1/chat/completions'
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

    const maxOut = maxOutputTokens(kind, body)
    // Upper bound on input: every ~4 bytes of the body as one token.
    const worstCaseNanos =
      maxOut === undefined
        ? Number.NaN
        : Math.ceil(parsed.raw.length / 4) * facade.inputPerM * 1e3 + maxOut * facade.outputPerM * 1e3
    const decision = await core.budgets.reserve({
      key: caller.key,
      user: caller.user,
      model: facade.model,
      worstCaseNanos,
    })
    if (!decision.ok) {
      const denial = budgetDenialResponse(decision)
      finishRow(row, caller, denial.status, denial.body.error.code)
      reply.code(denial.status).headers(denial.headers).send(denial.body)
      return
    }
    await forward(kind, request, reply, caller, row, body, parsed.raw, facade, decision.reservation)
  }

  async function forward(
    kind: ApiKind,
    request: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    row: UsageRow,
    body: Json,
    raw: Buffer,
    facade: ModelFacade,
    reservation: Reservation,
  ): Promise<void> {
    const target = upstreams.target(
      facade.provider,
      facade.provider === 'simulated' ? await simulatedBaseUrl() : undefined,
    )!
    const streamed = kind !== 'embeddings' && body.stream === true
    row.streamed = streamed
    // OpenAI reports stream usage only when asked; ask, and hide the answer's traces from the client.
    const injectUsage =
      streamed && kind === 'chat' && (body.stream_options as Json | null | undefined)?.include_usage !== true
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
    if (kind === 'messages') {
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
        path: target.basePath + UPSTREAM_PATH[kind],
        method: 'POST',
        headers,
        body: payload,
        signal: abort.signal,
      })
    } catch (err) {
      res.off('close', onClose)
      void core.budgets.release(reservation).catch(() => {})
      const code = (err as { code?: string }).code
      if (clientGone) {
        finishRow(row, caller, 499, 'client_disconnected')
        return
      }
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        finishRow(row, caller, 504, 'upstream_timeout')
        reply
          .code(504)
          .send(
            errorBody(
              'upstream_timeout',
              `The upstream provider (${facade.provider}) did not answer within ${timeoutMs} ms (UPSTREAM_TIMEOUT_MS). Retry later, or raise the limit.`,
            ),
          )
        return
      }
      finishRow(row, caller, 502, 'upstream_unreachable')
      reply
        .code(502)
        .send(
          errorBody(
            'upstream_unreachable',
            `Could not reach the upstream provider (${facade.provider}): ${code ?? 'connection failed'}.`,
          ),
        )
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
    // The provider bills what it produced; where it did not say, estimate.
    let nanos = 0
    if (ok) {
      if (!usage.sawInput) {
        usage.input = estimateTokens(requestChars(kind, body))
        row.tokens_estimated = true
      }
      if (!usage.sawOutput && kind !== 'embeddings') {
        usage.output = Math.max(usage.output, estimateTokens(usage.textChars))
        row.tokens_estimated = true
      }
      row.input_tokens = usage.input
      row.output_tokens = usage.output
      row.cached_read_tokens = usage.cachedRead
      row.cache_write_tokens = usage.cacheWrite
      nanos = costNanos(
        {
          input: usage.input,
          output: usage.output,
          cachedRead: usage.cachedRead,
          cacheWrite: usage.cacheWrite,
        },
        facade,
      )
      row.cost_usd = nanosToUsdString(nanos)
      void core.budgets.settle(reservation, nanos).catch(() => {})
    } else {
      void core.budgets.release(reservation).catch(() => {})
    }
    if (streamed && firstByteAt > 0) row.ttft_ms = firstByteAt - caller.startedAt
    const finalStatus =
      failure === 'client_disconnected' ? 499 : failure === 'upstream_timeout' ? 504 : failure ? 502 : status
    const journaled = finishRow(row, caller, finalStatus, failure || errorClassFor(status))
    if (complete && !failure) {
      if (journaled) await journaled.catch(() => {})
      for (const h of held) if (!res.write(h)) await drained(res)
      res.end()
    }
    res.off('close', onClose)
    if (closing) res.socket?.end()
  }

  app.post('/v1/chat/completions', (request, reply) => proxy('chat', request, reply))
  app.post('/v1/embeddings', (request, reply) => proxy('embeddings', request, reply))
  app.post('/v1/messages', (request, reply) => proxy('messages', request, reply))
}
