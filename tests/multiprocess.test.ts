import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { waitFor } from './helpers/clickhouse-http-checks.ts'
import { type ComposeFile, loadCompose, serviceEnv } from './helpers/compose-env.ts'
import { freePort } from './helpers/free-port.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'
import { callAdmin, type ServiceProcess, startService } from './helpers/service-process.ts'

/**
 * Server mode as docker-compose.yml runs it, without Docker: two gateway
 * processes, one API process and one worker process, each started with the
 * environment the compose file gives its service (hosts, ports and data
 * directories substituted), over real HTTP to a ClickHouse HTTP endpoint (the
 * embedded engine behind tests/helpers/clickhouse-http.ts) and a real
 * redis-server. Fed concurrently through both gateways with the official
 * openai client: every answered request is counted exactly once, a team budget
 * holds across both gateways, and a worker killed while ClickHouse is away
 * changes nothing.
 */
const ADMIN = `mp-admin-${randomUUID()}`
const SESSION_SECRET = `mp-session-${randomUUID()}`
/** Appears in every prompt; must never reach a log. */
const PROMPT_MARK = `prompt-mark-${randomUUID()}`
/** $1000 per million output tokens: max_tokens 5 costs exactly $0.005. */
const PRICE = { inputPerM: 0, outputPerM: 1000, cachedReadPerM: 0, cacheWritePerM: 0 }
const BUDGET_REQUESTS = 5

let ch: ClickHouseHttp
let redis: RedisProcess
let fake: FakeUpstream
let compose: ComposeFile
let api: ServiceProcess
let worker: ServiceProcess
let gateways: ServiceProcess[] = []
const everyProcess: ServiceProcess[] = []
const dirs: string[] = []
const dataDirs = new Map<string, string>()
/** x-request-id of every answer a client got (200s and budget refusals: both are usage rows). */
const answered = new Map<string, number>()

/** The compose service's environment with the hosts and ports of this machine. */
async function envFor(
  service: 'gateway' | 'api' | 'worker',
  instance: string,
): Promise<Record<string, string>> {
  const env = serviceEnv(compose, service)
  expect(env.CLICKHOUSE_URL).toBe('http://clickhouse:8123')
  expect(env.REDIS_URL).toBe('redis://redis:6379')
  let dataDir = dataDirs.get(instance)
  if (!dataDir) {
    dataDir = mkdtempSync(join(tmpdir(), `tokenmeter-mp-${instance}-`))
    dirs.push(dataDir)
    dataDirs.set(instance, dataDir)
  }
  return {
    ...env,
    CLICKHOUSE_URL: ch.url,
    REDIS_URL: redis.url,
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
    DATA_DIR: dataDir,
  }
}

/** Every admin call goes to the API process. */
const admin = (method: string, path: string, body?: object) => callAdmin(api, method, path, body)

async function apiGet<T>(path: string): Promise<T> {
  const res = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  expect(res.status, path).toBe(200)
  return (await res.json()) as T
}

function client(gateway: ServiceProcess, apiKey: string, project: string) {
  return new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey,
    maxRetries: 0,
    defaultHeaders: { 'x-project': project, 'x-client-app': 'multiprocess-test' },
  })
}

/** One chat completion (streamed when i is odd); records the answer's request id. */
async function chat(c: OpenAI, i: number, maxTokens?: number): Promise<'ok' | 'refused'> {
  const params = {
    model: 'gpt-mp',
    messages: [{ role: 'user' as const, content: `${PROMPT_MARK} request ${i}: one line on rollups.` }],
    ...(maxTokens ? { max_tokens: maxTokens } : {}),
  }
  try {
    if (i % 2 === 1) {
      const { data, response } = await c.chat.completions.create({ ...params, stream: true }).withResponse()
      for await (const _ of data) {
        // drain the stream: the usage row is written when it ends
      }
      answered.set(response.headers.get('x-request-id')!, 200)
    } else {
      const { response } = await c.chat.completions.create(params).withResponse()
      answered.set(response.headers.get('x-request-id')!, 200)
    }
    return 'ok'
  } catch (err) {
    if (err instanceof OpenAI.RateLimitError) {
      answered.set(err.headers!.get('x-request-id')!, 429)
      return 'refused'
    }
    throw err
  }
}

async function rawCount(project: string): Promise<number> {
  const [r] = await ch.query<{ n: string }>(
    `SELECT count() AS n FROM requests WHERE project = '${project}' SETTINGS select_sequential_consistency = 1`,
  )
  return Number(r?.n)
}

type JobCounts = { waiting: number; active: number; delayed: number; failed: number }

/** Spilled batches in Redis, as the API's ops status reports them. */
async function redisJobs(): Promise<JobCounts> {
  const s = await apiGet<{ redis?: { jobs: JobCounts } }>('/api/admin/ops/status')
  if (!s.redis) throw new Error('the API process has no Redis spill store')
  return s.redis.jobs
}

let trafficKey = ''
let budgetKey = ''

beforeAll(async () => {
  ch = await startClickHouseHttp()
  // As in docker-compose.yml: AOF and noeviction.
  redis = await startRedis(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction'])
  fake = await createFakeUpstream()
  compose = loadCompose({
    ADMIN_TOKEN: ADMIN,
    SESSION_SECRET,
    OPENAI_BASE_URL: `${fake.url}/v1`,
    OPENAI_API_KEY: 'sk-upstream-multiprocess',
    // Settings the compose file passes through, chosen to keep this test short:
    // a killed worker's Redis job lock is 2 x insert timeout + 1 s.
    CLICKHOUSE_INSERT_TIMEOUT_MS: '1000',
    RECORDER_FLUSH_MS: '200',
  })
  // The API first (it migrates), then the others at once.
  api = await startService('api', await envFor('api', 'api'))
  everyProcess.push(api)
  const started = await Promise.all([
    startService('gateway-1', await envFor('gateway', 'gateway-1')),
    startService('gateway-2', await envFor('gateway', 'gateway-2')),
    startService('worker', await envFor('worker', 'worker')),
  ])
  gateways = started.slice(0, 2)
  worker = started[2]!
  everyProcess.push(...started)

  // Everything through the API process; the gateways learn it from ClickHouse.
  for (const [teamId, userId] of [
    ['mp-team', 'mp-user'],
    ['mp-budget-team', 'mp-budget-user'],
  ] as const) {
    await admin('POST', '/teams', { teamId, name: teamId })
    await admin('POST', '/users', {
      userId,
      email: `${userId}@example.com`,
      name: userId,
      teamId,
      role: 'member',
    })
  }
  await admin('PUT', '/models/gpt-mp', { provider: 'openai', upstreamModel: 'gpt-4o-mini', ...PRICE })
  await admin('POST', '/budgets', {
    budgetId: 'b_mp',
    scope: 'team',
    scopeId: 'mp-budget-team',
    period: 'month',
    capUsd: BUDGET_REQUESTS * 0.005,
  })
  // Keys last: a gateway that knows a key has refreshed after the budget was written.
  trafficKey = (await admin('POST', '/keys', { userId: 'mp-user', name: 'traffic' })).plaintext
  budgetKey = (await admin('POST', '/keys', { userId: 'mp-budget-user', name: 'budget' })).plaintext
  for (const g of gateways) {
    for (const key of [trafficKey, budgetKey]) {
      await waitFor(
        `${g.name} to know the key`,
        async () => (await fetch(`${g.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).ok,
        15_000,
      )
    }
  }
}, 120_000)

afterAll(async () => {
  for (const p of everyProcess) await p.kill()
  await fake?.close()
  await redis?.stop()
  await ch?.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('two gateways, an API and a worker as separate processes in server mode', () => {
  it('counts every answered request exactly once, rollups and KPIs included', async () => {
    const clients = gateways.map((g) => client(g, trafficKey, 'mp-traffic'))
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => chat(clients[i % 2]!, i)))
    expect(results.every((r) => r === 'ok')).toBe(true)
    await waitFor('40 rows', async () => (await rawCount('mp-traffic')) >= 40, 20_000)
    expect(await rawCount('mp-traffic')).toBe(40)
  })

  it(`admits at most ${BUDGET_REQUESTS} requests of a team budget across both gateways`, async () => {
    const clients = gateways.map((g) => client(g, budgetKey, 'mp-budget'))
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(clients[i % 2]!, i * 2, 5)))
    expect(results.filter((r) => r === 'ok').length).toBe(BUDGET_REQUESTS)
    expect(results.filter((r) => r === 'refused').length).toBe(30 - BUDGET_REQUESTS)
    // The refusals are usage rows too (status 429, no cost).
    await waitFor('30 rows', async () => (await rawCount('mp-budget')) >= 30, 20_000)
    const byStatus = await ch.query<{ status: number; n: string; cost: string }>(
      "SELECT status_code AS status, count() AS n, toString(sum(cost_usd)) AS cost FROM requests WHERE project = 'mp-budget' GROUP BY status ORDER BY status",
    )
    expect(byStatus.map((r) => [r.status, Number(r.n), Number(r.cost)])).toEqual([
      [200, BUDGET_REQUESTS, BUDGET_REQUESTS * 0.005],
      [429, 30 - BUDGET_REQUESTS, 0],
    ])
    const { budgets } = await admin('GET', '/budgets')
    expect(budgets.find((b: { budgetId: string }) => b.budgetId === 'b_mp')).toMatchObject({
      spentUsd: BUDGET_REQUESTS * 0.005,
      reservedUsd: 0,
    })
  })

  it('loses and double-counts nothing when the worker is killed while ClickHouse is away', async () => {
    await ch.stop()
    // What an orchestrator sees meanwhile: the API cannot answer without
    // ClickHouse, the gateways can (rows spill), so only the API is unready.
    const ready = async (p: ServiceProcess) => (await fetch(`${p.url}/readyz`)).status
    expect(await ready(api)).toBe(503)
    for (const g of gateways) expect(await ready(g), g.name).toBe(200)
    const clients = gateways.map((g) => client(g, trafficKey, 'mp-outage'))
    // The gateways' inserts fail and their batches go to Redis. Every consumer
    // (the worker, and the gateways, which have the worker role too) keeps the
    // jobs it took active until ClickHouse answers, and takes jobs while it has
    // a free slot. Traffic continues until jobs stay waiting on two looks in a
    // row: every consumer is then full, so the worker surely dies holding batches.
    let sent = 0
    let saturatedLooks = 0
    await waitFor(
      'every consumer (the worker, both gateways) to be full of spilled batches',
      async () => {
        const wave = await Promise.all(Array.from({ length: 4 }, (_, i) => chat(clients[i % 2]!, sent + i)))
        sent += wave.length
        expect(wave.every((r) => r === 'ok')).toBe(true)
        const jobs = await redisJobs()
        saturatedLooks = jobs.active >= 3 && jobs.waiting > 0 ? saturatedLooks + 1 : 0
        return saturatedLooks >= 2
      },
      30_000,
    )
    await worker.kill()
    // The first insert after the outage commits but its answer is lost: the
    // batch is inserted again, and its dedup token must drop the repeat.
    ch.loseResponses(1)
    await ch.start()
    // Restarted on its own data directory, as the container would be.
    worker = await startService('worker', await envFor('worker', 'worker'))
    everyProcess.push(worker)
    await waitFor(
      'the backlog to drain',
      async () => {
        const jobs = await redisJobs()
        return jobs.waiting + jobs.active + jobs.delayed === 0 && (await rawCount('mp-outage')) >= sent
      },
      40_000,
    )
    expect(ch.stats.lostResponses).toBe(1)
    expect((await redisJobs()).failed).toBe(0)
    expect(await rawCount('mp-outage')).toBe(sent)
  })

  it('holds exactly the answered request ids, once each; rollups and /api/kpis equal the raw table', async () => {
    const projects = "('mp-traffic', 'mp-budget', 'mp-outage')"
    const ids = await ch.query<{ id: string; n: string; status: number }>(
      `SELECT toString(request_id) AS id, count() AS n, any(status_code) AS status FROM requests WHERE project IN ${projects} GROUP BY id`,
    )
    expect(ids.length).toBe(answered.size)
    for (const r of ids) {
      expect(Number(r.n), r.id).toBe(1)
      expect(answered.get(r.id), r.id).toBe(r.status)
    }
    const totals = `sum(input_tokens) AS input, sum(output_tokens) AS output, toString(sum(cost_usd)) AS cost`
    const [raw] = await ch.query<{ requests: string; input: string; output: string; cost: string }>(
      `SELECT count() AS requests, ${totals} FROM requests WHERE project IN ${projects}`,
    )
    for (const table of ['usage_5m', 'usage_1h', 'usage_1d']) {
      const [r] = await ch.query(
        `SELECT sum(requests) AS requests, ${totals} FROM ${table} WHERE project IN ${projects}`,
      )
      expect(r, table).toEqual(raw)
    }
    const kpis = await apiGet<{ requests: number; spendUsd: number; outputTokens: number }>(
      '/api/kpis?range=24h&projects=mp-traffic,mp-budget,mp-outage',
    )
    expect(kpis.requests).toBe(answered.size)
    expect(kpis.requests).toBe(Number(raw!.requests))
    expect(kpis.spendUsd).toBeCloseTo(Number(raw!.cost), 9)
    expect(kpis.outputTokens).toBe(Number(raw!.output))
  })

  it('logs JSON lines with request ids, never a key or a prompt', () => {
    const answeredIds = [...answered.keys()]
    let requestLines = 0
    const withIds = new Set<string>()
    for (const p of everyProcess) {
      const out = p.output()
      expect(out, `${p.name} logged a virtual key`).not.toContain(trafficKey)
      expect(out, `${p.name} logged a virtual key`).not.toContain(budgetKey)
      expect(out, `${p.name} logged the admin token`).not.toContain(ADMIN)
      expect(out, `${p.name} logged a prompt`).not.toContain(PROMPT_MARK)
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue
        const entry = JSON.parse(line) as { reqId?: string; level?: number; time?: number }
        expect(typeof entry.level).toBe('number')
        expect(typeof entry.time).toBe('number')
        if (entry.reqId) {
          requestLines++
          withIds.add(entry.reqId)
        }
      }
    }
    expect(requestLines).toBeGreaterThan(0)
    // The request id a client sees is the one in the gateways' logs.
    expect(answeredIds.filter((id) => withIds.has(id)).length).toBeGreaterThan(0)
  })

  it('stops every process gracefully on SIGTERM (exit code 0)', async () => {
    // A connection opened ahead of need and never used (client pools and load
    // balancers do this) must not hold a process open.
    const idle = await Promise.all(
      [api, worker, ...gateways].map(
        (p) =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect(Number(p.env.PORT), '127.0.0.1', () => resolve(s))
            s.on('error', reject)
          }),
      ),
    )
    const codes = await Promise.all(
      [api, worker, ...gateways].map(async (p) => [p.name, await p.terminate()] as const),
    )
    expect(codes).toEqual([
      ['api', 0],
      ['worker', 0],
      ['gateway-1', 0],
      ['gateway-2', 0],
    ])
    for (const s of idle) s.destroy()
  })
})
