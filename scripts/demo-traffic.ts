/**
 * Sends demo traffic through a running gateway, as the embedded default does
 * on its own (services/src/demo/demo-traffic.ts):
 *
 *   npm run demo-traffic -- --url http://localhost:8787 --key tm_... --rps 5
 *
 * Keys: one or more --key, or --key-file with one key per line (keeps keys
 * out of the process list). Models are the demo facades (gpt-4o-mini,
 * claude-sonnet-4, ...): they must exist on the gateway. Stops on Ctrl-C or
 * after --duration seconds, then prints what was sent.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { normalizeTags } from '../services/src/core/usage/usage-row.ts'
import { startDemoTraffic } from '../services/src/demo/demo-traffic.ts'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    key: { type: 'string', multiple: true, default: [] },
    'key-file': { type: 'string' },
    rps: { type: 'string', default: '2' },
    duration: { type: 'string' },
    project: { type: 'string', default: 'demo-cli' },
    tags: { type: 'string', default: 'demo,cli' },
    app: { type: 'string', default: 'demo-traffic' },
    'no-behaviors': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (args.help) {
  console.log(`Usage: node scripts/demo-traffic.ts --key tm_... [--key ...] [--key-file F] [--url U] [--rps N]
       [--duration S] [--project P] [--tags a,b] [--app NAME] [--no-behaviors]`)
  process.exit(0)
}

const plaintexts = [...(args.key ?? [])]
if (args['key-file']) {
  for (const line of readFileSync(args['key-file'], 'utf8').split('\n'))
    if (line.trim()) plaintexts.push(line.trim())
}
if (plaintexts.length === 0) {
  console.error('Give at least one virtual key: --key tm_... or --key-file path (see --help).')
  process.exit(2)
}
const rps = Number(args.rps)
if (!(rps > 0)) {
  console.error(`--rps must be a positive number, got ${args.rps}`)
  process.exit(2)
}

const traffic = startDemoTraffic({
  gatewayUrl: args.url,
  rps,
  behaviors: !args['no-behaviors'],
  keys: plaintexts.map((plaintext) => ({
    plaintext,
    apps: [args.app],
    projects: [{ name: args.project, tags: normalizeTags(args.tags) }],
  })),
  logger: pino({ level: 'warn' }, pino.destination(2)),
})
console.log(`Sending ~${rps} req/s to ${args.url} with ${plaintexts.length} key(s); Ctrl-C stops.`)

const report = setInterval(() => {
  const s = traffic.stats()
  console.log(
    `  sent ${s.sent}, ok ${s.ok}, failed ${s.failed}, skipped ${s.skipped}, last status ${s.lastStatus}`,
  )
}, 5_000)

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  clearInterval(report)
  await traffic.stop()
  const s = traffic.stats()
  console.log(`Done: sent ${s.sent}, ok ${s.ok}, failed ${s.failed}.`)
  process.exit(s.failed > 0 && s.ok === 0 ? 1 : 0)
}
process.on('SIGINT', () => void stop())
process.on('SIGTERM', () => void stop())
if (args.duration) setTimeout(() => void stop(), Number(args.duration) * 1000)
