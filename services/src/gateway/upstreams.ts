import { Agent } from 'undici'
import type { Env, NamedUpstream } from '../core/config/env.ts'
import type { Provider } from '../core/identity/entities.ts'
import type { ApiKind } from './usage-capture.ts'

/** Where a provider's API lives: origin for the connection pool, path prefix for the routes. */
export interface UpstreamTarget {
  origin: string
  basePath: string
  /** Appended to every path: `?api-version=...` for Azure OpenAI, else ''. */
  query: string
  /** The provider credential (never the client's virtual key). */
  auth: Record<string, string>
}

function target(baseUrl: string, auth: Record<string, string>, query = ''): UpstreamTarget {
  const u = new URL(baseUrl)
  return { origin: u.origin, basePath: u.pathname.replace(/\/+$/, ''), query, auth }
}

/**
 * A named OpenAI-compatible upstream. Azure OpenAI (API_VERSION set) takes its
 * key in an `api-key` header and the version as a query parameter; the others
 * take a bearer token like OpenAI.
 */
function namedTarget(u: NamedUpstream): UpstreamTarget {
  if (u.apiVersion) {
    return target(
      u.baseUrl,
      u.apiKey ? { 'api-key': u.apiKey } : {},
      `?${new URLSearchParams({ 'api-version': u.apiVersion })}`,
    )
  }
  return target(u.baseUrl, u.apiKey ? { authorization: `Bearer ${u.apiKey}` } : {})
}

export interface Upstreams {
  agent: Agent
  /** undefined for `simulated` until a simulated base URL is known, and for a name not configured. */
  target(provider: Provider, simulatedBaseUrl: string | undefined): UpstreamTarget | undefined
  /** Names of the configured named upstreams (UPSTREAMS). */
  named: string[]
  close(): Promise<void>
}

/**
 * One undici Agent, which keeps a keep-alive pool per upstream origin. The
 * timeouts are the gateway's upstream timeout: waiting for headers, and the
 * longest silence between two body chunks of a stream.
 */
export function createUpstreams(env: Env): Upstreams {
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: env.UPSTREAM_TIMEOUT_MS,
    bodyTimeout: env.UPSTREAM_TIMEOUT_MS,
    connections: 512,
  })
  const openai = target(
    env.OPENAI_BASE_URL,
    env.OPENAI_API_KEY ? { authorization: `Bearer ${env.OPENAI_API_KEY}` } : {},
  )
  const anthropic = target(
    env.ANTHROPIC_BASE_URL,
    env.ANTHROPIC_API_KEY ? { 'x-api-key': env.ANTHROPIC_API_KEY } : {},
  )
  const named = new Map(env.namedUpstreams.map((u) => [u.name, namedTarget(u)]))
  let simulated: UpstreamTarget | undefined
  let simulatedFrom: string | undefined
  return {
    agent,
    named: [...named.keys()],
    target(provider, simulatedBaseUrl) {
      if (provider === 'openai') return openai
      if (provider === 'anthropic') return anthropic
      if (provider !== 'simulated') return named.get(provider)
      if (!simulatedBaseUrl) return undefined
      if (simulatedBaseUrl !== simulatedFrom) {
        simulated = target(simulatedBaseUrl, {})
        simulatedFrom = simulatedBaseUrl
      }
      return simulated
    },
    close: () => agent.close(),
  }
}

/** An upstream path with the target's own query (Azure's api-version) added to the client's. */
export function withTargetQuery(target: UpstreamTarget, path: string): string {
  if (!target.query) return path
  return path.includes('?') ? `${path}&${target.query.slice(1)}` : path + target.query
}

/** The APIs in Anthropic's shape; every other kind is OpenAI's. */
export const isAnthropicKind = (kind: ApiKind): boolean => kind === 'messages' || kind === 'count_tokens'

/** Which providers speak which API: simulated speaks both, named upstreams speak OpenAI's. */
export function providerServes(provider: Provider, kind: ApiKind): boolean {
  if (provider === 'simulated') return true
  return isAnthropicKind(kind) ? provider === 'anthropic' : provider !== 'anthropic'
}

export const UPSTREAM_PATH: Record<ApiKind, string> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  messages: '/messages',
  responses: '/responses',
  count_tokens: '/messages/count_tokens',
}

export const ENDPOINT: Record<ApiKind, string> = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
  messages: '/v1/messages',
  responses: '/v1/responses',
  count_tokens: '/v1/messages/count_tokens',
}

/** Kinds that are model calls: billed, budgeted and recorded as rows. */
export const BILLED: Record<ApiKind, boolean> = {
  chat: true,
  completions: true,
  embeddings: true,
  messages: true,
  responses: true,
  count_tokens: false,
}

/** Response headers worth passing back to the client (besides rate-limit families). */
const PASS_HEADERS = new Set([
  'content-type',
  'retry-after',
  'openai-processing-ms',
  'openai-version',
  'anthropic-organization-id',
])

/** The upstream's headers the client should see; our x-request-id replaces theirs. */
export function clientHeaders(
  upstream: Record<string, string | string[] | undefined>,
  requestId: string,
  keepLength: boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { 'x-request-id': requestId }
  for (const name in upstream) {
    const v = upstream[name]
    if (v === undefined) continue
    if (
      PASS_HEADERS.has(name) ||
      name.startsWith('x-ratelimit-') ||
      name.startsWith('anthropic-ratelimit-') ||
      (keepLength && name === 'content-length')
    ) {
      out[name] = v
    } else if (name === 'x-request-id' || name === 'request-id') {
      out['x-upstream-request-id'] = v
    }
  }
  return out
}
