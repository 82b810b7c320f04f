import { fileURLToPath } from 'node:url'
import { type Child, cpuSeconds, freePort, rssMiB, startChild } from './lib/child.ts'
import { closedLoop, type LoadResult, openLoop, type Target } from './lib/load.ts'
import { commandFor, emit, log, parseArgs, type Table } from './lib/report.ts'
import { fmt, percentile, ratio } from './lib/stats.ts'

/**
 * Gateway overhead, side by side in one run: the same requests sent straight
 * to the upstream, through our gateway (own process, recording on, embedded
 * engine) and through @portkey-ai/gateway (own process), against an upstream
 * with no latency and one with a fixed latency, JSON and streamed answers.
 * Slices of each target are interleaved round by round so drift in the
 * machine's load hits all three alike.
 */
const args = parseArgs()
const SLICE_S = args.quick ? 2 : 5
const ROUNDS = args.quick ? 1 : 3
const FIXED_LATENCY_MS = 25
const MEMORY_RATE = 2_000
const MEMORY_S = args.quick ? 10 : 60
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))
const node = process.execPath

const prompt =
  'Summarise the quarterly usage report for the platform team in three short bullet points. '.repeat(5)
const body = (stream: boolean) =>
  JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: prompt }],
    max_tokens: 64,
    ...(stream ? { stream: true } : {}),
  })

interface Stack {
  upstream: Child
  ours: Child
  portkey: Child
  floor: Child
  upstreamUrl: string
  key: string
}

async function startStack(latencyMs: number): Promise<Stack> {
  const upstream = await startChild(node, [here('./upstream.process.ts'), `--latency-ms=${latencyMs}`], {
    marker: 'READY ',
  })
  const upstreamUrl = upstream.ready
  // --insert-nice=N: EMBEDDED_INSERT_NICE of our gateway, to compare tail latency with and without it.
  const nice = process.argv.filter((a) => a.startsWith('--insert-nice='))
  const ours = await startChild(node, [here('./gateway.process.ts'), `--upstream=${upstreamUrl}`, ...nice], {
    marker: 'READY ',
    timeoutMs: 120_000,
  })
  const port = await freePort()
  const portkey = await startChild(
    node,
    [
      // Without this shim Portkey fails every streamed completion on Node (see portkey-shim.ts).
      `--import=${here('./portkey-shim.ts')}`,
      here('../../node_modules/@portkey-ai/gateway/build/start-server.js'),
      `--port=${port}`,
      '--headless',
    ],
    // Production mode: no log-streaming UI, as one would deploy it.
    {
      marker: /Ready for connections/,
      env: { NODE_ENV: 'production', PORT: String(port) },
      quietStderr: true,
    },
  )
  portkey.ready = `http://127.0.0.1:${port}`
  const floor = await startChild(node, [here('./passthrough.process.ts'), `--upstream=${upstreamUrl}`], {
    marker: 'READY ',
  })
  return { upstream, ours, portkey, floor, upstreamUrl, key: (JSON.parse(ours.ready) as { key: string }).key }
}

function targets(
  s: Stack,
  stream: boolean,
): { direct: Target; ours: Target; portkey: Target; floor: Target } {
  const b = body(stream)
  const path = '/v1/chat/completions'
  return {
    direct: {
      name: 'direct',
      origin: s.upstreamUrl,
      path,
      headers: { authorization: 'Bearer sk-bench-upstream' },
      body: b,
    },
    ours: {
      name: 'tokenmeter',
      origin: (JSON.parse(s.ours.ready) as { url: string }).url,
      path,
      headers: { authorization: `Bearer ${s.key}` },
      body: b,
    },
    portkey: {
      name: 'portkey',
      origin: s.portkey.ready,
      path,
      headers: {
        authorization: 'Bearer sk-bench-upstream',
        'x-portkey-provider': 'openai',
        'x-portkey-custom-host': `${s.upstreamUrl}/v1`,
      },
      body: b,
    },
    floor: {
      name: 'pass-through floor',
      origin: s.floor.ready,
      path,
      headers: { authorization: 'Bearer sk-bench-upstream' },
      body: b,
    },
  }
}

/** One request per target, checked, so a misconfigured path cannot produce fast errors. */
async function smoke(t: Target) {
  const res = await fetch(t.origin + t.path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...t.headers },
    body: t.body,
  })
  const text = await res.text()
  if (res.status !== 200 || !text.includes('word15')) {
    throw new Error(`${t.name}: smoke request failed (${res.status}): ${text.slice(0, 300)}`)
  }
}

const merge = (rs: LoadResult[]): LoadResult => {
  const latencies = rs.flatMap((r) => r.latencies)
  const ok = rs.reduce((n, r) => n + r.ok, 0)
  const seconds = rs.reduce((n, r) => n + r.seconds, 0)
  return {
    target: rs[0]!.target,
    latencies,
    ok,
    errors: rs.reduce((n, r) => n + r.errors, 0),
    seconds,
    rps: ok / seconds,
  }
}

const latencyRows: (string | number)[][] = []
const peakRows: (string | number)[][] = []
const memoryRows: (string | number)[][] = []
let oursSent = 0
let failures = 0

async function scenario(
  stack: Stack,
  latencyMs: number,
  stream: boolean,
  pids: { ours: number; portkey: number; floor: number },
) {
  const t = targets(stack, stream)
  const all = [t.direct, t.ours, t.portkey, t.floor]
  const label = `${latencyMs} ms upstream, ${stream ? 'streamed' : 'JSON'}`
  log(`scenario: ${label}`)
  for (const x of all) await smoke(x)
  for (const x of all) {
    const w = await closedLoop(x, 8, 1)
    if (x === t.ours) oursSent += w.ok
  }
  const acc = (r: LoadResult) => {
    if (r.target === 'tokenmeter') oursSent += r.ok
    failures += r.errors
    return r
  }
  // Concurrency 1, interleaved.
  const c1: Record<string, LoadResult[]> = Object.fromEntries(all.map((x) => [x.name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)]
    for (const x of order) c1[x.name]!.push(acc(await closedLoop(x, 1, SLICE_S)))
  }
  // Peak: closed loop with enough callers to saturate the CPU (the upstream's delay hides behind concurrency).
  const peakConcurrency = latencyMs > 0 ? 256 : 64
  const peak: Record<string, LoadResult[]> = Object.fromEntries(all.map((x) => [x.name, []]))
  const cpu: Record<string, number> = { tokenmeter: 0, portkey: 0, [t.floor.name]: 0 }
  const pidOf = (x: Target) =>
    x === t.ours ? pids.ours : x === t.portkey ? pids.portkey : x === t.floor ? pids.floor : undefined
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)]
    for (const x of order) {
      const pid = pidOf(x)
      const before = pid ? cpuSeconds(pid) : 0
      peak[x.name]!.push(acc(await closedLoop(x, peakConcurrency, SLICE_S)))
      if (pid) cpu[x.name]! += cpuSeconds(pid) - before
    }
  }
  const peakOf = (name: string) => merge(peak[name]!)
  // Half of each gateway's own peak, open loop, against the direct path at the same rate.
  const half: Record<string, { rate: number; direct: LoadResult[]; gw: LoadResult[] }> = {}
  for (const gw of [t.ours, t.portkey, t.floor]) {
    const rate = Math.max(1, Math.round(peakOf(gw.name).rps / 2))
    half[gw.name] = { rate, direct: [], gw: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const pair = round % 2 === 0 ? [t.direct, gw] : [gw, t.direct]
      for (const x of pair) {
        const r = acc(await openLoop(x, rate, SLICE_S))
        ;(x === gw ? half[gw.name]!.gw : half[gw.name]!.direct).push(r)
      }
    }
  }
  const d1 = merge(c1.direct!)
  for (const gw of [t.ours, t.portkey, t.floor]) {
    const g1 = merge(c1[gw.name]!)
    const h = half[gw.name]!
    const hd = merge(h.direct)
    const hg = merge(h.gw)
    latencyRows.push([
      label,
      gw.name,
      fmt(percentile(d1.latencies, 50), 2),
      fmt(percentile(g1.latencies, 50), 2),
      fmt(percentile(g1.latencies, 50) - percentile(d1.latencies, 50), 2),
      fmt(percentile(g1.latencies, 99) - percentile(d1.latencies, 99), 2),
      h.rate.toLocaleString('en-US'),
      fmt(percentile(hg.latencies, 50) - percentile(hd.latencies, 50), 2),
      fmt(percentile(hg.latencies, 99) - percentile(hd.latencies, 99), 2),
      `${hg.errors + g1.errors}`,
    ])
  }
  const pd = peakOf('direct')
  const po = peakOf('tokenmeter')
  const pp = peakOf('portkey')
  const pf = peakOf(t.floor.name)
  peakRows.push([
    label,
    peakConcurrency,
    fmt(pd.rps, 0),
    fmt(pf.rps, 0),
    fmt(po.rps, 0),
    fmt(pp.rps, 0),
    ratio(po.rps, pp.rps),
    ratio(po.rps, pf.rps),
    fmt((cpu[t.floor.name]! * 1e6) / pf.ok, 0),
    fmt((cpu.tokenmeter! * 1e6) / po.ok, 0),
    fmt((cpu.portkey! * 1e6) / pp.ok, 0),
  ])
  log(`  peak direct ${fmt(pd.rps, 0)} ours ${fmt(po.rps, 0)} portkey ${fmt(pp.rps, 0)} req/s`)
}

async function memory(stack: Stack, pids: { ours: number; portkey: number; floor: number }) {
  const t = targets(stack, false)
  for (const gw of [t.ours, t.portkey]) {
    const pid = gw === t.ours ? pids.ours : pids.portkey
    const before = rssMiB(pid)
    const samples: number[] = []
    const timer = setInterval(() => samples.push(rssMiB(pid)), 1_000)
    const r = await openLoop(gw, MEMORY_RATE, MEMORY_S)
    clearInterval(timer)
    if (gw === t.ours) oursSent += r.ok
    failures += r.errors
    memoryRows.push([
      gw.name,
      `${MEMORY_RATE.toLocaleString('en-US')} req/s for ${MEMORY_S} s (${FIXED_LATENCY_MS} ms upstream)`,
      fmt(r.rps, 0),
      fmt(before, 0),
      fmt(Math.max(...samples), 0),
      fmt(samples.at(-1), 0),
      fmt(percentile(r.latencies, 99), 1),
      r.errors,
    ])
  }
}

for (const latencyMs of [0, FIXED_LATENCY_MS]) {
  const stack = await startStack(latencyMs)
  const pids = { ours: stack.ours.pid, portkey: stack.portkey.pid, floor: stack.floor.pid }
  try {
    for (const stream of [false, true]) await scenario(stack, latencyMs, stream, pids)
    if (latencyMs === FIXED_LATENCY_MS) await memory(stack, pids)
  } finally {
    await stack.portkey.stop()
    await stack.floor.stop()
    await stack.ours.stop(60_000)
    await stack.upstream.stop()
  }
  const statsLine = stack.ours.lines.find((l) => l.startsWith('STATS '))
  const stats = statsLine
    ? (JSON.parse(statsLine.slice(6)) as { recorded: number; inserted: number; spilled: number })
    : undefined
  log(`gateway recorder: ${JSON.stringify(stats)}; client saw ${oursSent} OK answers`)
  if (!stats || stats.recorded < oursSent || stats.inserted + stats.spilled !== stats.recorded) {
    throw new Error(`recording incomplete: ${JSON.stringify(stats)} for ${oursSent} answers`)
  }
  oursSent = 0
}

const cmd = commandFor('gateway', args)
const tables: Table[] = [
  {
    id: 'gateway-latency',
    title: 'Gateway added latency (ms): concurrency 1 and half of each gateway’s own peak',
    command: cmd,
    columns: [
      'Upstream, answer',
      'Gateway',
      'Direct p50 (c=1)',
      'Via gateway p50 (c=1)',
      'Added p50 (c=1)',
      'Added p99 (c=1)',
      'Half-peak rate req/s',
      'Added p50 (half peak)',
      'Added p99 (half peak)',
      'Errors',
    ],
    rows: latencyRows,
    notes: [
      `Each slice ${SLICE_S} s, ${ROUNDS} round(s), targets interleaved; the direct path is measured in the same rounds and at the same rate.`,
      'Added = percentile through the gateway minus the same percentile direct. Half-peak runs are open loop (latency counted from the scheduled start).',
      '"pass-through floor" is scripts/bench/passthrough.process.ts: node:http in, undici out, nothing else; what one more Node process hop costs on this machine.',
      'Streamed latency is to the last byte of the stream. Our gateway asks the upstream for stream usage and hides it from the client (the rewrite path).',
    ],
  },
  {
    id: 'gateway-peak',
    title: 'Gateway peak throughput (req/s, closed loop) and CPU per request',
    command: cmd,
    columns: [
      'Upstream, answer',
      'Callers',
      'Direct',
      'Pass-through floor',
      'Tokenmeter',
      'Portkey',
      'Tokenmeter / Portkey',
      'Tokenmeter / floor',
      'Floor CPU µs/req',
      'Tokenmeter CPU µs/req',
      'Portkey CPU µs/req',
    ],
    rows: peakRows,
    notes: [
      'Load generator, upstream and gateway are three processes on the same 2 cores: peak is what is left for the gateway, the same for both gateways.',
      'CPU µs/req is the gateway process’s own CPU time (/proc/<pid>/stat) during its peak slices divided by the requests it answered: it does not depend on how busy the rest of the machine was. Ours includes recording every row into the embedded ClickHouse in the same process.',
    ],
  },
  {
    id: 'memory-gateway',
    title: 'Gateway resident memory under a steady 2,000 req/s',
    command: cmd,
    columns: [
      'Gateway',
      'Load',
      'Achieved req/s',
      'RSS before MiB',
      'RSS max MiB',
      'RSS end MiB',
      'p99 ms',
      'Errors',
    ],
    rows: memoryRows,
    notes: [
      'RSS from /proc/<pid>/status sampled every second. Ours hosts the embedded ClickHouse engine in the same process.',
    ],
  },
]
if (failures > 0) log(`${failures} failed requests in total (counted in the tables)`)
emit(tables)
