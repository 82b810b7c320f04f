import {
  availableModelsQuery,
  availableModelsResponse,
  errorResponse,
  keyIdParams,
  myKeyRevokeResponse,
  myKeysQuery,
  myKeysResponse,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import type { Principal } from '../core/identity/auth.ts'
import type { ApiKey } from '../core/identity/entities.ts'
import { keyStatus } from '../core/identity/keys.ts'
import { createPriceCatalogue } from '../core/pricing/price-catalogue.ts'
import { requireRole } from './auth.plugin.ts'
import { availableModels } from './available-models.ts'
import { assertInScope, resolveFilter, type Scope, scopeFor } from './filters.ts'
import { queryKeySpend } from './queries/key-spend.ts'
import { responses } from './route-schemas.ts'

/**
 * What anyone signed in may see and do about themselves: the models their
 * keys reach (GET /api/models), the keys they own with spend and cap (GET
 * /api/me/keys) and revoking one of them (a key they think leaked). Only
 * keys the caller owns are ever listed or touched, whatever the role: a lead
 * or an admin sees their team's or everyone's keys on the usage pages, not
 * here. Issuing, rotating and limiting keys stays with admins (a new key
 * would start without the caps an admin set on the old one).
 */
export const selfServiceRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const { store } = core
  const signedIn = { preValidation: requireRole() }
  const doc = (summary: string) => ({ tags: ['self-service'], summary })
  const catalogue = createPriceCatalogue()

  /** The keys the caller owns (virtual keys, any status); none for the bootstrap admin token. */
  const ownKeys = (p: Principal): ApiKey[] =>
    p.userId ? store.keys().filter((k) => k.userId === p.userId) : []
  /** The key this request's credential came from, if it came from one. */
  const credentialKey = (p: Principal): string | undefined => {
    if (p.via === 'api-key') return p.credentialId
    const session = p.via === 'session' ? store.session(p.credentialId) : undefined
    return session?.source === 'key' ? session.sourceId : undefined
  }

  app.get(
    '/models',
    {
      ...signedIn,
      schema: {
        ...doc('Models your keys may call through the gateway, with prices per million tokens'),
        querystring: availableModelsQuery,
        response: responses(availableModelsResponse),
      },
    },
    async (request) =>
      availableModels(
        {
          store,
          catalogue,
          passthrough: core.env.MODEL_PASSTHROUGH,
          namedUpstreams: core.env.namedUpstreams,
        },
        request.principal!.userId,
      ),
  )

  app.get(
    '/me/keys',
    {
      ...signedIn,
      schema: {
        ...doc('The API keys you own (prefix only), their spend in the range (default 30d) and cap'),
        querystring: myKeysQuery,
        response: responses(myKeysResponse),
      },
    },
    async (request) => {
      const p = request.principal!
      const keys = ownKeys(p)
      const scope: Scope = {
        kind: 'keys',
        keyIds: keys.map((k) => k.keyId),
        userId: p.userId,
        teamId: p.teamId,
      }
      const f = resolveFilter(request.query, Date.now(), '30d')
      // Filters are refused as everywhere (outside what the caller may see: 403); within it they narrow the own keys.
      assertInScope(scopeFor(p, store), f.lists, store)
      const spend = new Map(
        (await queryKeySpend(core.warehouse, store, f, scope)).keys.map((s) => [s.keyId, s]),
      )
      const used = credentialKey(p)
      return {
        keys: keys
          .filter((k) => spend.has(k.keyId))
          .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
          .map((k) => {
            const s = spend.get(k.keyId)!
            return {
              keyId: k.keyId,
              name: k.name,
              prefix: k.keyPrefix,
              status: keyStatus(k),
              createdAt: k.createdAt.toISOString(),
              expiresAt: k.expiresAt?.toISOString() ?? null,
              revokedAt: k.revokedAt?.toISOString() ?? null,
              allowedModels: k.allowedModels,
              spentUsd: s.spentUsd,
              capUsd: s.capUsd,
              period: s.period,
              periodSpentUsd: s.periodSpentUsd,
              percentUsed: s.percentUsed,
              signedInWith: used === k.keyId,
            }
          }),
      }
    },
  )

  app.post(
    '/me/keys/:keyId/revoke',
    {
      ...signedIn,
      schema: {
        ...doc('Revoke one of your own keys at once (requests with it fail; sessions opened with it end)'),
        params: keyIdParams,
        response: { ...responses(myKeyRevokeResponse), 404: errorResponse.describe('Not a key of yours') },
      },
    },
    async (request) => {
      const key = ownKeys(request.principal!).find((k) => k.keyId === request.params.keyId)
      // Someone else's key and no key at all read the same: nothing says that an id exists.
      if (!key) {
        throw new HttpError(404, 'not_found', `You own no key ${request.params.keyId}; see GET /api/me/keys.`)
      }
      const revoked = keyStatus(key) === 'revoked' ? key : await store.revokeKey(key.keyId)
      return {
        key: {
          keyId: revoked.keyId,
          status: keyStatus(revoked),
          revokedAt: revoked.revokedAt?.toISOString() ?? null,
        },
      }
    },
  )
}
