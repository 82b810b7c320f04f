import type { UsageRow } from '../../../services/src/core/usage/usage-row.ts'
import { createCatalogue } from '../../../services/src/demo/usage-catalogue.ts'
import { generateUsageBatches } from '../../../services/src/demo/usage-generator.ts'

const catalogue = createCatalogue({ seed: 7, prefix: 'jb' })

/**
 * `n` rows of the demo catalogue (what `npm run bench` ingests), seeded,
 * spread over the last `spanMs` milliseconds: the journal benchmark's rows.
 */
export function demoRows(n: number, seed: number, spanMs: number): UsageRow[] {
  const to = Date.now()
  const out: UsageRow[] = []
  for (const b of generateUsageBatches({
    catalogue,
    seed,
    from: to - spanMs,
    to,
    rows: n,
    batchSize: 50_000,
    batchId: (i) => `jb-${seed}-${i}`,
  }))
    out.push(...b.rows)
  return out
}
