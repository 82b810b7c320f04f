import { type Logger, pino } from 'pino'
/**
 * What every benchmark returns: tables that bench.ts prints as Markdown and
 * docs/BENCHMARKS.md reproduces. A child process prints its tables as one
 * `@@BENCH <json>` line on stdout so the parent can collect them.
 */
export interface Table {
  id: string
  title: string
  /** The exact command that reproduces this table. */
  command: string
  columns: string[]
  rows: (string | number)[][]
  notes?: string[]
}

export const RESULT_PREFIX = '@@BENCH '

export function emit(tables: Table[]): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(tables)}\n`)
}

export function toMarkdown(t: Table): string {
  const cell = (v: string | number) => String(v).replace(/\|/g, '\\|')
  const lines = [
    `### ${t.title}`,
    '',
    `\`${t.command}\``,
    '',
    `| ${t.columns.map(cell).join(' | ')} |`,
    `| ${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ]
  if (t.notes?.length) lines.push('', ...t.notes.map((n) => `- ${n}`))
  return `${lines.join('\n')}\n`
}

/** Command-line flags shared by every benchmark module. */
export interface BenchArgs {
  quick: boolean
  cpuProf: boolean
}

export function parseArgs(argv = process.argv.slice(2)): BenchArgs {
  return { quick: argv.includes('--quick'), cpuProf: argv.includes('--cpu-prof') }
}

export function commandFor(name: string, args: BenchArgs): string {
  const sizes = process.argv.filter((a) => a.startsWith('--rows=') || a.startsWith('--batch='))
  return `npm run bench -- --only=${name}${args.quick ? ' --quick' : ''}${sizes.map((a) => ` ${a}`).join('')}`
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`)
}

/** The Core's logger for a bench: errors only, as JSON lines through log(). */
export function errorLogger(): Logger {
  return pino({ level: 'error' }, { write: (line: string) => log(line.trimEnd()) })
}
