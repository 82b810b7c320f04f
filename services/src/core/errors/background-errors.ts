import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'

/**
 * Errors of work nobody awaits (admin refresh, Redis spill/replay housekeeping,
 * budget settle/release after an answer): none is dropped silently. Each is
 * counted in tokenmeter_background_errors_total{where} and logged with its
 * context; while the same place keeps failing (Redis away), the log says so
 * once per LOG_EVERY_MS with how many it left out, the counter counts all.
 */
export interface BackgroundErrors {
  report(where: string, err: unknown, context?: Record<string, unknown>): void
  /** For `promise.catch(...)`: reports and resolves. */
  catcher(where: string, context?: Record<string, unknown>): (err: unknown) => void
  count(where: string): number
}

const LOG_EVERY_MS = 10_000

export function createBackgroundErrors(deps: {
  log: Logger
  registry?: Registry
  now?: () => number
}): BackgroundErrors {
  const now = deps.now ?? Date.now
  const counter = new Counter({
    name: 'tokenmeter_background_errors_total',
    help: 'Errors in background work (admin refresh, Redis spill/replay, budget settle/release), by where.',
    labelNames: ['where'],
    registers: deps.registry ? [deps.registry] : [],
  })
  const counts = new Map<string, number>()
  const lastLog = new Map<string, { at: number; suppressed: number }>()
  const errors: BackgroundErrors = {
    report(where, err, context = {}) {
      counter.inc({ where })
      counts.set(where, (counts.get(where) ?? 0) + 1)
      const last = lastLog.get(where)
      const t = now()
      if (last && t - last.at < LOG_EVERY_MS) {
        last.suppressed++
        return
      }
      lastLog.set(where, { at: t, suppressed: 0 })
      deps.log.error(
        {
          where,
          err: err instanceof Error ? err.message : String(err),
          ...context,
          ...(last?.suppressed ? { alsoFailedSinceLastLog: last.suppressed } : {}),
        },
        `background error in ${where}`,
      )
    },
    catcher: (where, context) => (err) => errors.report(where, err, context),
    count: (where) => counts.get(where) ?? 0,
  }
  return errors
}

/** What modules deep in the worker get: just the report function. */
export type ReportError = BackgroundErrors['report']
