import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'
import { TransientInsertError } from '../worker/batch-inserter.ts'
import { requireRole } from './auth.plugin.ts'
import { parseInput } from './input-errors.ts'

const idParam = z.object({ id: z.string().regex(/^[A-Za-z0-9_.-]{1,160}$/) })
const batchParam = z.object({ batchId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/) })
const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) })

/**
 * Ops for outages (admin only): what waits in Redis and on disk, the replay's
 * progress, the quarantine; replay now, retry or export quarantined batches.
 * The CLI (`npm run ops`) is a thin client of these endpoints.
 */
export const opsRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const kit = core.outage
  app.addHook('preHandler', requireRole('admin'))

  app.get('/status', async () => kit.status())

  app.get('/batches', async (request) => {
    const { limit } = parseInput(listQuery, request.query, 'query')
    return { batches: await kit.listBatches(limit) }
  })

  app.get('/batches/:batchId', async (request) => {
    const { batchId } = parseInput(batchParam, request.params, 'params', 'batch id')
    const batch = await kit.inspect(batchId)
    if (!batch) {
      throw new HttpError(
        404,
        'not_found',
        `No spilled batch ${batchId} waits in Redis or the spool; it may have been replayed already (see GET /api/admin/ops/batches).`,
      )
    }
    return batch
  })

  app.post('/replay', async () => {
    await kit.replayNow()
    return kit.status()
  })

  app.get('/quarantine', async () => ({ entries: await kit.quarantine.list() }))

  app.get('/quarantine/:id', async (request, reply) => {
    const { id } = parseInput(idParam, request.params, 'params', 'quarantine id')
    const entry = await kit.quarantine.get(id)
    if (!entry)
      throw new HttpError(404, 'not_found', `No quarantine entry ${id} (see GET /api/admin/ops/quarantine).`)
    if ((request.query as { raw?: string }).raw === '1' && entry.file) {
      reply.header('content-type', 'application/octet-stream')
      reply.header('content-disposition', `attachment; filename="${entry.file}"`)
      return readFile(join(kit.quarantine.dir, entry.file))
    }
    return entry
  })

  app.post('/quarantine/:id/retry', async (request) => {
    const { id } = parseInput(idParam, request.params, 'params', 'quarantine id')
    const entry = await kit.quarantine.get(id)
    if (!entry)
      throw new HttpError(404, 'not_found', `No quarantine entry ${id} (see GET /api/admin/ops/quarantine).`)
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
  })

  app.delete('/quarantine/:id', async (request) => {
    const { id } = parseInput(idParam, request.params, 'params', 'quarantine id')
    if (!(await kit.quarantine.get(id))) throw new HttpError(404, 'not_found', `No quarantine entry ${id}.`)
    await kit.quarantine.remove(id)
    return { id, deleted: true }
  })
}
