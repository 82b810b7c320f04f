import { Counter, Histogram, type Registry } from 'prom-client'

/** One registration per registry: a test or process may build the gateway more than once over one Core. */
function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: L[],
): Counter<L> {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Counter<L>
  return new Counter({ name, help, labelNames, registers: [registry] })
}

/** Upstream usage counts clamped into range (usage-bounds.ts), by field and reason. */
export const usageSanitizedCounter = (registry: Registry) =>
  counter(
    registry,
    'tokenmeter_usage_sanitized_total',
    'Upstream usage counts that were out of range (non-finite, negative, above 1e9) and clamped',
    ['field', 'reason'],
  )

/** Requests refused because their address had too many failed authentications. */
export const authLimitedCounter = (registry: Registry) =>
  counter(
    registry,
    'tokenmeter_gateway_auth_limited_total',
    'Gateway requests refused with 429 after too many failed authentications from one address',
    [],
  )

/**
 * How long the end of each answer was held for its usage row to be in the
 * journal: the append, the end of the turn's write (and with
 * JOURNAL_FSYNC_MS=0 its fdatasync). The journal's whole cost on an answer's
 * latency, measured where it is paid.
 */
export const journalHoldHistogram = (registry: Registry): Histogram => {
  const name = 'tokenmeter_journal_answer_hold_seconds'
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Histogram
  return new Histogram({
    name,
    help: 'Time the end of an answer waited for its usage row to be written to the journal (and fsynced with JOURNAL_FSYNC_MS=0)',
    buckets: [0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25],
    registers: [registry],
  })
}
