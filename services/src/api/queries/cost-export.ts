import type { AdminStore } from '../../core/identity/admin-store.ts'
import type { Warehouse } from '../../core/storage/warehouse.ts'
import { csvLine } from '../csv.ts'
import { type Scope, type UsageFilter, whereClause } from '../filters.ts'
import { localDate } from '../time-range.ts'
import {
  bucketExpr,
  fragments,
  fromClause,
  GROUP_COLUMNS,
  groupName,
  metricsSelect,
  tagGroupCondition,
} from './sql.ts'

export type ExportDim = 'user' | 'team' | 'key' | 'model' | 'tag'
export type ExportRows = 'group' | 'day'

/** The columns of the 30-day cost table, one row per group; `rows=day` puts `day` first. */
const EXPORT_COLUMNS = [
  'group_id',
  'name',
  'email',
  'team',
  'requests',
  'input_tokens',
  'output_tokens',
  'cached_tokens',
  'total_tokens',
  'cost_usd',
  'cost_usd_exact',
  'cache_write_tokens',
  'reasoning_tokens',
  'unpriced_requests',
]

function exportHeader(rows: ExportRows): string[] {
  return rows === 'day' ? ['day', ...EXPORT_COLUMNS] : EXPORT_COLUMNS
}

/** Excel reads a UTF-8 file as the local code page unless it starts with a byte order mark. */
const UTF8_BOM = '\uFEFF'

/**
 * An exact decimal (as ClickHouse prints it) rounded half-up to whole cents,
 * in integer arithmetic so no binary fraction moves a half cent: finance
 * sees cents, and the exact value sits in the next column.
 */
export function roundUsdToCents(exact: string): string {
  const neg = exact.startsWith('-')
  const [int = '0', frac = ''] = (neg ? exact.slice(1) : exact).split('.')
  const nanos = BigInt(int || '0') * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9))
  const cents = (nanos + 5_000_000n) / 10_000_000n
  const text = `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`
  return neg && cents > 0n ? `-${text}` : text
}

/**
 * The cost table as CSV lines, streamed row by row from ClickHouse so memory
 * stays flat however long the table is. By default one row per group, most
 * expensive first; `rows=day` gives one row per group and local day (in the
 * filter's zone), ordered by day then group. Names, emails and teams come
 * from the admin store, each looked up once.
 */
export async function* exportCostCsv(
  wh: Warehouse,
  store: AdminStore,
  f: UsageFilter,
  scope: Scope,
  by: ExportDim,
  rows: ExportRows = 'group',
  bom = false,
): AsyncGenerator<string> {
  const src = f.range.source
  const where = whereClause(f, scope, fragments(src).time)
  const col = GROUP_COLUMNS[by]
  const perDay = rows === 'day'
  const lines = await wh.stream(
    `SELECT ${perDay ? `${bucketExpr('1d', src)} AS d, ` : ''}${col} AS g, ${metricsSelect(src)}
     FROM ${fromClause(src, by)} WHERE ${where.sql}${tagGroupCondition(by, f.lists.tags)}
     GROUP BY ${perDay ? 'd, g ORDER BY d, g' : 'g ORDER BY sum(cost_usd) DESC, g'}`,
    { ...where.params, tz: f.range.tz },
    'JSONEachRow',
  )
  yield (bom ? UTF8_BOM : '') + csvLine(exportHeader(rows))
  const names = new Map<string, { name: string; email: string; team: string }>()
  for await (const line of lines) {
    if (!line.trim()) continue
    const r = JSON.parse(line) as Record<string, string | number>
    const g = String(r.g)
    let who = names.get(g)
    if (who === undefined) {
      const n = groupName(by, g, store)
      // A key's email is its owner's: the person finance asks about the spend.
      const email = n.email ?? (by === 'key' ? (store.user(store.key(g)?.userId ?? '')?.email ?? '') : '')
      who = { name: n.name, email, team: n.teamName ?? n.teamId ?? '' }
      names.set(g, who)
    }
    const input = Number(r.m_input)
    const output = Number(r.m_output)
    const exact = String(r.m_cost)
    yield csvLine([
      ...(perDay ? [localDate(f.range.tz, Number(r.d) * 1000)] : []),
      g,
      who.name,
      who.email,
      who.team,
      Number(r.m_requests),
      input,
      output,
      Number(r.m_cached),
      input + output,
      roundUsdToCents(exact),
      exact,
      Number(r.m_cache_write),
      Number(r.m_reasoning),
      Number(r.m_unpriced),
    ])
  }
}
