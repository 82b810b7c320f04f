import type { FastifyInstance } from 'fastify'
import type { Core } from '../bootstrap.ts'
import { HttpError } from '../core/errors/http-error.ts'

/** How long the API waits for ClickHouse to answer a ping before calling it unreachable. */
const PING_TIMEOUT_MS = 1_500

async function reachable(core: Core): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS)
  })
  try {
    return await Promise.race([core.warehouse.ping(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Rows accepted but not yet in ClickHouse: at least the batches listed in
 * Redis and the sealed spool segments, and at least what this process spilled
 * minus what its replay has written back (the spool's open segment is not
 * listed yet), plus what the recorder holds in memory. Best effort: a count
 * that cannot be read is left out rather than failing the answer (and the
 * failure is logged and counted as a background error).
 */
async function bufferedRows(core: Core): Promise<number> {
  const [listed, replayed] = await Promise.all([
    core.outage
      .listBatches(1_000)
      .then((batches) => batches.reduce((n, b) => n + (b.rows ?? 0), 0))
      .catch((err) => {
        core.backgroundErrors.report('buffered_rows', err, { source: 'spilled batches' })
        return 0
      }),
    core.outage
      .status()
      .then((s) => s.replay.rows)
      .catch((err) => {
        core.backgroundErrors.report('buffered_rows', err, { source: 'replay status' })
        return 0
      }),
  ])
  const stats = core.recorder.stats()
  return Math.max(listed, stats.spilled - replayed) + stats.pendingRows
}

/**
 * For usage routes: an unexpected failure while ClickHouse does not answer a
 * ping is an outage, not a bug. It becomes 503 `storage_unavailable` with the
 * number of buffered requests, which the dashboard shows as such (nothing is
 * lost: the gateway keeps recording and the replay catches up). Anything
 * else goes on to the app's error handler.
 */
export function answerStorageOutages(app: FastifyInstance, core: Core) {
  app.setErrorHandler(async (err, request) => {
    if (err instanceof HttpError || (err as { statusCode?: number }).statusCode) throw err
    if (await reachable(core)) throw err
    const buffered = await bufferedRows(core)
    request.log.warn({ err, buffered }, 'usage query failed: ClickHouse unreachable')
    throw new HttpError(
      503,
      'storage_unavailable',
      `Usage storage (ClickHouse) is unreachable: ${buffered} requests buffered, nothing lost; usage answers resume when it returns.`,
      { buffered },
    )
  })
}
