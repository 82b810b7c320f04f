/**
 * CSV cells per RFC 4180, plus the OWASP rule for spreadsheets: a text cell
 * starting with = + - @ (or tab / carriage return) would run as a formula in
 * Excel or Sheets, so it gets a leading apostrophe. Numbers we produce
 * ourselves are written as-is.
 */
const FORMULA_START = /^[=+\-@\t\r]/
const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/

export function csvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  const text = FORMULA_START.test(value) ? `'${value}` : value
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

export function csvLine(cells: (string | number | boolean | null | undefined)[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`
}
