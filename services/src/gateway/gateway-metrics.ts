import { Counter, type Registry } from 'prom-client'

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
