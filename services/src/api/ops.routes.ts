import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  batchesQuery,
  batchesResponse,
  batchParams,
  batchResponse,
  opsStatusResponse,
  quarantineDeleteResponse,
  quarantineEntry,
  quarantineListResponse,
  quarantineParams,
  quarantineQuery,
  quarantineRetryResponse,
} from '@tokenmeter/contract'
import type { FastifyPluginAsync } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { TransientInsertError } from '../worker/batch-inserter.ts'
import { requireRole } from './auth.plugin.ts'
import { refusal, responses } from './route-schemas.ts'

/**
 * Ops for outages (admin only): what waits in Redis and on disk, the replay's
 * progress, the quarantine; replay now, retry or export quarantined batches.
 * The CLI (`npm run ops`) is a thin client of these endpoints.
 */
export const opsRoutes: FastifyPluginAsync<{ core: Core }> = async (plain, { core }) => {
  const app = plain.withTypeProvider<ZodTypeProvider>()
  const kit = core.outage
  // Before validation: a caller who is not an admin hears 401/403, not which parameter was wrong.
  app.addHook('preValidation', requireRole('admin'))
  const doc = (summary: string) => ({ tags: ['ops'], summary })
  const noEntry = refusal('No such quarantine entry')
  const noQuarantineEntry = (id: string) =>
    new HttpError(404, 'not_found', `No quarantine entry ${id} (see GET /api/admin/ops/quarantine).`)

  app.get(
    '/status',
    {
      schema: {
        ...doc('What waits in Redis and on disk, the replay, the journal, the quarantine'),
        response: responses(opsStatusResponse),
      },
    },
    async () => kit.status(),
  )

  app.get(
    '/batches',
    {
      schema: {
        ...doc('Spilled batches waiting for the replay, oldest first'),
        querystring: batchesQuery,
        response: responses(batchesResponse),
      },
    },
    async (request) => ({ batches: await kit.listBatches(request.query.limit) }),
  )

  app.get(
    '/batches/:batchId',
    {
      schema: {
        ...doc('One spilled batch with its rows'),
        params: batchParams,
        response: { ...responses(batchResponse), 404: refusal('No such batch waits (it may be replayed)') },
      },
    },
    async (request) => {
      const { batchId } = request.params
      const batch = await kit.inspect(batchId)
      if (!batch) {
        throw new HttpError(
          404,
          'not_found',
          `No spilled batch ${batchId} waits in Redis or the spool; it may have been replayed already (see GET /api/admin/ops/batches).`,
        )
      }
      return batch
    },
  )

  app.post(
    '/replay',
    { schema: { ...doc('Replay now; answers the status'), response: responses(opsStatusResponse) } },
    async () => {
      await kit.replayNow()
      return kit.status()
    },
  )

  app.get(
    '/quarantine',
    { schema: { ...doc('Quarantined batches and segments'), response: responses(quarantineListResponse) } },
    async () => ({ entries: await kit.quarantine.list() }),
  )

  app.get(
    '/quarantine/:id',
    {
      schema: {
        ...doc("One quarantine entry; ?raw=1 exports a damaged segment's bytes"),
        params: quarantineParams,
        querystring: quarantineQuery,
        response: {
          ...responses(quarantineEntry),
          200: {
            description: 'The entry, or with ?raw=1 the damaged segment',
            content: {
              'application/json': { schema: quarantineEntry },
              'application/octet-stream': { schema: z.string().describe('the segment, byte for byte') },
            },
          },
          404: noEntry,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      const entry = await kit.quarantine.get(id)
      if (!entry) throw noQuarantineEntry(id)
      if (request.query.raw === '1' && entry.file) {
        reply.header('content-type', 'application/octet-stream')
        reply.header('content-disposition', `attachment; filename="${entry.file}"`)
        // Bytes go out as they are (Fastify serializes only objects).
        const bytes = await readFile(join(kit.quarantine.dir, entry.file))
        return reply.send(bytes as unknown as string)
      }
      return { ...entry }
    },
  )

  app.post(
    '/quarantine/:id/retry',
    {
      schema: {
        ...doc('Insert a quarantined batch again'),
        params: quarantineParams,
        response: {
          ...responses(quarantineRetryResponse),
          404: noEntry,
          409: refusal('A damaged spool segment cannot be retried'),
          503: refusal('ClickHouse is not answering'),
        },
      },
    },
    async (request) => {
      const { id } = request.params
      const entry = await kit.quarantine.get(id)
      if (!entry) throw noQuarantineEntry(id)
      if (entry.kind === 'segment') {
        throw new HttpError(
          409,
          'not_retryable',
          'A damaged spool segment cannot be retried: its intact records were already replayed. Export it with ?raw=1 for forensics, then delete it.',
        )
      }
      try {
        const out = await kit.retryQuarantined(id)
        return { id, ...out, resolved: out.quarantined === 0 }
      } catch (err) {
        if (err instanceof TransientInsertError) {
          throw new HttpError(
            503,
            'clickhouse_unavailable',
            'ClickHouse is not answering; retry when it is back.',
          )
        }
        throw err
      }
    },
  )

  app.delete(
    '/quarantine/:id',
    {
      schema: {
        ...doc('Delete a quarantine entry (and its segment file)'),
        params: quarantineParams,
        response: { ...responses(quarantineDeleteResponse), 404: noEntry },
      },
    },
    async (request) => {
      const { id } = request.params
      if (!(await kit.quarantine.get(id))) throw noQuarantineEntry(id)
      await kit.quarantine.remove(id)
      return { id, deleted: true as const }
    },
  )
}
