import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { machineInfo } from './bench/lib/machine.ts'
import { RESULT_PREFIX, type Table, toMarkdown } from './bench/lib/report.ts'

/**
 * `npm run bench [-- --quick] [-- --only=ingest,gateway,queries,live,journal] [-- --cpu-prof]`
 *
 * Runs each benchmark in its own process (the embedded engine binds one data
 * directory per process, and a benchmark must not inherit another's heap or
 * background merges), collects their tables and prints them as Markdown, the
 * format of docs/BENCHMARKS.md. Results are also written to data/bench/.
 * Other flags (--rows=N, --batch=N) are passed to every benchmark.
 * --cpu-prof writes V8 CPU profiles of each benchmark process to data/bench/prof/
 * (the gateway and upstream children are profiled by adding --cpu-prof there).
 */
const BENCHES = {
  ingest: 'ingest.bench.ts',
  queries: 'query.bench.ts',
  live: 'live.bench.ts',
  gateway: 'gateway.bench.ts',
  journal: 'journal.bench.ts',
} as const
type BenchName = keyof typeof BENCHES

const argv = process.argv.slice(2)
const only = argv.find((a) => a.startsWith('--only='))?.slice(7)
const selected = (only ? only.split(',') : Object.keys(BENCHES)) as BenchName[]
for (const name of selected) {
  if (!(name in BENCHES))
    throw new Error(`unknown benchmark "${name}"; one of ${Object.keys(BENCHES).join(', ')}`)
}
const passThrough = argv.filter((a) => !a.startsWith('--only='))
const quick = argv.includes('--quick')
const outDir = fileURLToPath(new URL('../data/bench/', import.meta.url))
mkdirSync(outDir, { recursive: true })

function run(name: BenchName): Promise<Table[]> {
  const script = fileURLToPath(new URL(`./bench/${BENCHES[name]}`, import.meta.url))
  const nodeArgs = argv.includes('--cpu-prof') ? ['--cpu-prof', `--cpu-prof-dir=${outDir}prof`] : []
  const child = spawn(process.execPath, [...nodeArgs, script, ...passThrough], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let tables: Table[] = []
  let buf = ''
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl = buf.indexOf('\n')
    while (nl >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line.startsWith(RESULT_PREFIX)) tables = JSON.parse(line.slice(RESULT_PREFIX.length)) as Table[]
      else process.stderr.write(`${line}\n`)
      nl = buf.indexOf('\n')
    }
  })
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      // The embedded engine can crash while the process exits; the tables were already printed by then.
      if (tables.length > 0) resolve(tables)
      else reject(new Error(`benchmark ${name} failed (exit ${code ?? signal})`))
    })
  })
}

const started = new Date()
const machine = machineInfo()
const header = [
  `# Tokenmeter benchmark results (${quick ? 'quick' : 'full'} mode)`,
  '',
  `Started ${started.toISOString()}; command: \`npm run bench --${argv.length ? ` ${argv.join(' ')}` : ''}\``,
  '',
  `Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memGiB} GiB RAM, Node ${machine.node}.`,
  `Load average at start: ${machine.load1.toFixed(2)} (1 min), ${machine.load5.toFixed(2)} (5 min).`,
  machine.busy.length > 0
    ? `Other processes using CPU at start (%CPU command): ${machine.busy.join('; ')}.`
    : '',
  '',
]
const sections: string[] = []
const results: Record<string, Table[]> = {}
let failed = 0
for (const name of selected) {
  process.stderr.write(`\n== ${name} ==\n`)
  const t0 = Date.now()
  try {
    results[name] = await run(name)
    for (const t of results[name]) sections.push(toMarkdown(t))
  } catch (err) {
    failed++
    sections.push(`### ${name}\n\nFAILED: ${(err as Error).message}\n`)
  }
  process.stderr.write(`== ${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s ==\n`)
}
const end = machineInfo()
const footer = `\nLoad average at end: ${end.load1.toFixed(2)} (1 min), ${end.load5.toFixed(2)} (5 min).\n`
const markdown = `${header.join('\n')}\n${sections.join('\n')}${footer}`
const stamp = started.toISOString().replace(/[:.]/g, '-')
writeFileSync(`${outDir}results-${stamp}.md`, markdown)
writeFileSync(`${outDir}results-${stamp}.json`, JSON.stringify({ started, machine, end, results }, null, 2))
process.stdout.write(markdown)
process.stderr.write(`\nwritten to data/bench/results-${stamp}.md\n`)
process.exitCode = failed > 0 ? 1 : 0
