/**
 * Reading what GET /api/export.csv wrote, for the tests that check it: an
 * RFC 4180 reader of our own (not the product's writer run backwards) and the
 * header docs/API.md documents, spelled out here rather than imported, so a
 * renamed column fails the tests.
 */
export const DOCUMENTED_EXPORT_HEADER = [
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

/** Minimal RFC 4180 reader: quoted cells, doubled quotes, CRLF or LF line ends. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"'
        i++
      } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(cell)
      cell = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(cell)
      rows.push(row)
      row = []
      cell = ''
    } else cell += c
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell)
    rows.push(row)
  }
  return rows
}
