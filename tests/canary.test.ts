import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { constants, gunzipSync } from 'node:zlib'
import Anthropic from '@anthropic-ai/sdk'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../services/src/app.ts'
import { type Core, createCore } from '../services/src/bootstrap.ts'
import { parseEnv } from '../services/src/core/config/env.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'

// Canary strings in prompts and keys (the client's virtual key, a wrong key,
// the provider key) go through every path we have: chat and messages, stream
// and not, with and without usage, upstream errors, a refused key, budgets on
// Redis, a usage batch spilled to Redis and to the disk spool. Then every
// place we write is searched: the logs at trace level, every ClickHouse table,
// every Redis key (values decoded: base64 and gzip), every file in the data
// directory (gzip members decoded). Positive controls (the key prefix, which
// is meant to be stored) prove each search can find what is there.

const ADMIN = 'canary-admin-token-0123456789'
const RUN = randomUUID().replaceAll('-', '')
const PROMPT = `CANARYPROMPT${RUN}`
const SYSTEM = `CANARYSYSTEM${RUN}`
const WRONG_KEY = `tm_CANARYWRONGKEY${RUN}`
const UPSTREAM_KEY = `sk-CANARYUPSTREAM${RUN}`

let redis: RedisProcess
let fake: FakeUpstream
let core: Core
let app: FastifyInstance
let dataDir: string
let url: string
let log = ''
const restoreConsole: (() => void)[] = []
const recorded: UsageRow[] = []

beforeAll(async () => {
  for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[m]
    console[m] = (...args: unknown[]) => {
      log += `${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`
    }
    restoreConsole.push(() => {
      console[m] = original
    })
  }
  redis = await startRedis()
  fake = await createFakeUpstream()
  dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-canary-'))
  const env = parseEnv({
    DATA_DIR: dataDir,
    ADMIN_TOKEN: ADMIN,
    DEMO: 'false',
    LOG_LEVEL: 'trace',
    REDIS_URL: redis.url,
    // No replay worker: the spilled batches must stay where they were put to be searched.
    ROLES: 'gateway,api',
    OPENAI_BASE_URL: `${fake.url}/v1`,
    OPENAI_API_KEY: UPSTREAM_KEY,
    ANTHROPIC_BASE_URL: `${fake.url}/v1`,
    ANTHROPIC_API_KEY: UPSTREAM_KEY,
    RECORDER_FLUSH_MS: '200',
  })
  core = await createCore(env)
  core.recorder.onRecord((row) => recorded.push(row))
  const stream = new Writable({
    write(chunk, _enc, done) {
      log += chunk.toString()
      done()
    },
  })
  app = await buildApp(core, { roles: ['gateway', 'api'], logger: { level: 'trace', stream } })
  url = await app.listen({ host: '127.0.0.1', port: 0 })
})
afterAll(async () => {
  await app?.close()
  await core?.close()
  await fake?.close()
  await redis?.stop()
  for (const r of restoreConsole) r()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

async function adminCall(method: string, path: string, body?: object) {
  const res = await fetch(`${url}/api/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  expect(res.status, await res.clone().text()).toBeLessThan(300)
  return res.json()
}

/** The text itself plus everything hidden in it: base64 runs and gzip members, decoded. */
function expand(buf: Buffer, depth = 0): string[] {
  const out = [buf.toString('latin1')]
  if (depth > 2) return out
  for (let i = buf.indexOf(0x1f); i >= 0 && i < buf.length - 2; i = buf.indexOf(0x1f, i + 1)) {
    if (buf[i + 1] !== 0x8b || buf[i + 2] !== 8) continue
    try {
      out.push(...expand(gunzipSync(buf.subarray(i), { finishFlush: constants.Z_SYNC_FLUSH }), depth + 1))
    } catch {
      // not a gzip member after all
    }
  }
  for (const m of out[0]!.matchAll(/[A-Za-z0-9+/]{40,}={0,2}/g)) {
    out.push(...expand(Buffer.from(m[0], 'base64'), depth + 1))
  }
  return out
}

async function clickhouseHits(needle: string): Promise<string[]> {
  const tables = await core.warehouse.query<{ name: string }>(
    "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'",
  )
  const hits: string[] = []
  for (const { name } of tables) {
    if (!/^[A-Za-z0-9_.]+$/.test(name)) continue
    const [row] = await core.warehouse.query<{ n: string }>(
      `SELECT count() AS n FROM ${name} WHERE position(formatRow('TSV', *), {needle:String}) > 0`,
      { needle },
    )
    if (Number(row?.n) > 0) hits.push(name)
  }
  return hits
}

async function redisDump(): Promise<string> {
  const client = new Redis(redis.url)
  let text = ''
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'COUNT', 1000)
      cursor = next
      for (const key of keys) {
        text += `${key}\n`
        const dump = await client.dumpBuffer(key)
        if (dump) text += expand(dump).join('\n')
        const type = await client.type(key)
        const values =
          type === 'string'
            ? [await client.getBuffer(key)]
            : type === 'hash'
              ? Object.values(await client.hgetallBuffer(key))
              : type === 'list'
                ? await client.lrangeBuffer(key, 0, -1)
                : type === 'set'
                  ? await client.smembersBuffer(key)
                  : type === 'zset'
                    ? await client.zrangeBuffer(key, '0', '-1')
                    : type === 'stream'
                      ? [Buffer.from(JSON.stringify(await client.xrange(key, '-', '+')))]
                      : []
        for (const v of values) if (v) text += expand(v).join('\n')
      }
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
  return text
}

function filesText(dir: string): { files: number; text: string } {
  let files = 0
  let text = ''
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      const st = statSync(p)
      if (st.isDirectory()) walk(p)
      else if (st.isFile() && st.size < 64 * 1024 * 1024) {
        files++
        text += `${p}\n${expand(readFileSync(p)).join('\n')}`
      }
    }
  }
  walk(dir)
  return { files, text }
}

describe('canaries', () => {
  it('never reach logs, ClickHouse, Redis or the data directory', async () => {
    await adminCall('POST', '/teams', { teamId: 'team-c', name: 'C' })
    await adminCall('POST', '/users', {
      userId: 'user-c',
      email: 'c@example.com',
      name: 'C',
      teamId: 'team-c',
    })
    const prices = { inputPerM: 1, outputPerM: 2, cachedReadPerM: 0, cacheWritePerM: 0 }
    for (const [model, provider, upstreamModel] of [
      ['c-gpt', 'openai', 'gpt-4o-mini'],
      ['c-gpt-nousage', 'openai', 'gpt-4o-mini@no-usage'],
      ['c-gpt-500', 'openai', 'gpt-4o-mini@error-500'],
      ['c-claude', 'anthropic', 'claude-sonnet-4-5'],
      ['c-embed', 'openai', 'text-embedding-3-small'],
    ]) {
      await adminCall('PUT', `/models/${model}`, { provider, upstreamModel, ...prices })
    }
    const { key, plaintext } = await adminCall('POST', '/keys', { userId: 'user-c', name: 'canary' })
    await adminCall('POST', '/budgets', {
      budgetId: 'b_canary',
      scope: 'key',
      scopeId: key.keyId,
      period: 'day',
      capUsd: 100,
    })

    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: plaintext, maxRetries: 0 })
    const anthropic = new Anthropic({ baseURL: url, apiKey: plaintext, maxRetries: 0 })
    const messages = [
      { role: 'system' as const, content: SYSTEM },
      { role: 'user' as const, content: PROMPT },
    ]
    await openai.chat.completions.create({ model: 'c-gpt', messages, user: PROMPT })
    for await (const _ of await openai.chat.completions.create({
      model: 'c-gpt',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    })) {
      // drain
    }
    for await (const _ of await openai.chat.completions.create({
      model: 'c-gpt-nousage',
      messages,
      stream: true,
    })) {
      // drain
    }
    await expect(openai.chat.completions.create({ model: 'c-gpt-500', messages })).rejects.toThrow()
    await openai.embeddings.create({ model: 'c-embed', input: PROMPT })
    await anthropic.messages.create({
      model: 'c-claude',
      system: SYSTEM,
      max_tokens: 50,
      messages: [{ role: 'user', content: PROMPT }],
    })
    for await (const _ of anthropic.messages.stream({
      model: 'c-claude',
      max_tokens: 50,
      messages: [{ role: 'user', content: PROMPT }],
    })) {
      // drain
    }
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: WRONG_KEY, maxRetries: 0 })
    await expect(wrong.chat.completions.create({ model: 'c-gpt', messages })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    )
    // A session made from the key, and the budget status it can read.
    const session = await fetch(`${url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: plaintext }),
    })
    expect(session.status).toBeLessThan(300)

    await core.recorder.flush()
    expect(recorded.length).toBeGreaterThanOrEqual(7)
    // The same rows an outage would spill: once to the Redis queue, once to the disk spool.
    const batch = { batchId: `canary-${RUN}`, createdAt: Date.now(), rows: recorded }
    await core.outage.sink.spill(batch, new Error('canary test'))
    await core.outage.spool.spill({ ...batch, batchId: `canary-disk-${RUN}` }, new Error('canary test'))
    await core.outage.spool.seal()

    const canaries = { PROMPT, SYSTEM, key: plaintext, WRONG_KEY, UPSTREAM_KEY }
    const prefix = String(key.prefix).replace('…', '')

    expect(log.length).toBeGreaterThan(0)
    expect(log).toContain('/v1/chat/completions') // the request log is there at trace level
    const redisText = await redisDump()
    expect(redisText).toContain(prefix) // the spilled rows were decoded
    expect(redisText).toContain('b_canary') // the budget counters are there
    const disk = filesText(dataDir)
    expect(disk.files).toBeGreaterThan(0)
    expect(disk.text).toContain(prefix) // the spooled rows were decoded
    expect(await clickhouseHits(prefix)).toContain('requests')

    for (const [name, canary] of Object.entries(canaries)) {
      expect(log.includes(canary), `${name} in logs`).toBe(false)
      expect(await clickhouseHits(canary), `${name} in ClickHouse`).toEqual([])
      expect(redisText.includes(canary), `${name} in Redis`).toBe(false)
      expect(disk.text.includes(canary), `${name} in ${dataDir}`).toBe(false)
    }
  })
})
