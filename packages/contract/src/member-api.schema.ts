import { z } from 'zod'
import { filterSchema } from './filter.schema.ts'

/**
 * What a signed-in person may do for themselves, whatever their role: see
 * the models their keys reach (with prices), list the keys they own and
 * revoke one of them. Keys are issued, rotated and limited by admins only.
 */
const iso = z.string().describe('ISO 8601 UTC')
const perM = (what: string) => z.number().describe(`USD per million ${what} tokens`)

export const modelPrices = z.object({
  inputPerM: perM('input'),
  outputPerM: perM('output'),
  cachedReadPerM: perM('cached input (read)'),
  cacheWritePerM: perM('cache write'),
})
export type ModelPrices = z.infer<typeof modelPrices>

export const availableModelsQuery = z.object({}).strict()
export const availableModelsResponse = z.object({
  passthrough: z
    .boolean()
    .describe('names without a facade are forwarded too (MODEL_PASSTHROUGH), priced from the catalogue'),
  namedUpstreams: z
    .array(z.string())
    .describe('with passthrough, `<upstream>/<model>` reaches these upstreams'),
  keys: z
    .array(
      z.object({
        keyId: z.string(),
        name: z.string(),
        prefix: z.string(),
        allowedModels: z.array(z.string()).describe('names or `*` patterns; empty: every model'),
      }),
    )
    .describe("the caller's own live keys"),
  models: z.array(
    z.object({
      model: z.string().describe('the name a client sends'),
      provider: z.string(),
      upstreamModel: z.string(),
      source: z.enum(['facade', 'catalogue']).describe("facade: an admin's; catalogue: passthrough"),
      prices: modelPrices.nullable().describe('null: no price is known, requests are recorded at cost 0'),
      tiered: z.boolean().describe('long-context tiers raise some prices past a number of tokens'),
      keyIds: z.array(z.string()).describe("the caller's keys that may call it"),
    }),
  ),
})
export type AvailableModels = z.infer<typeof availableModelsResponse>

export const keyStatus = z.enum(['active', 'revoked', 'expired'])

export const myKeysQuery = filterSchema
export const myKey = z.object({
  keyId: z.string(),
  name: z.string(),
  prefix: z.string().describe('the first characters; the full key is never shown again'),
  status: keyStatus,
  createdAt: iso,
  expiresAt: iso.nullable(),
  revokedAt: iso.nullable(),
  allowedModels: z.array(z.string()).describe('names or `*` patterns; empty: every model'),
  spentUsd: z.number().describe('spend in the requested range (default 30d)'),
  capUsd: z.number().nullable(),
  period: z.enum(['day', 'week', 'month']).nullable(),
  periodSpentUsd: z.number().nullable().describe("spend in the cap's current period"),
  percentUsed: z.number().nullable(),
  signedInWith: z.boolean().describe('this session was opened with this key: revoking it signs you out'),
})
export type MyKey = z.infer<typeof myKey>
export const myKeysResponse = z.object({ keys: z.array(myKey) })
export type MyKeys = z.infer<typeof myKeysResponse>

export const keyIdParams = z.object({ keyId: z.string().min(1).max(64) }).strict()
export const myKeyRevokeResponse = z.object({
  key: myKey.pick({ keyId: true, status: true, revokedAt: true }),
})
