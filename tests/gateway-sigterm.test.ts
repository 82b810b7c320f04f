import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createWarehouse } from '../services/src/core/storage/warehouse.ts'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { freePort } from './helpers/free-port.ts'
import { type ServiceProcess, startService } from './helpers/service-process.ts'

// The real server process under load gets SIGTERM: every request that was
// answered with a 200 must be in ClickHouse exactly once afterwards. The
// server runs embedded, so this process opens the same data directory only
// after the server has exited (one process per data directory).

const ADMIN = 'sigterm-admin-token-0123456789'
let fake: FakeUpstream | undefined
let child: ChildProcess | undefined
const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-sigterm-'))

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL')
  await fake?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

describe('SIGTERM under load', () => {
  it('keeps every answered request', async () => {
    fake = await createFakeUpstream({ slowChunkMs: 20 })
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    child = spawn(process.execPath, ['services/src/server.ts'], {
      env: {
        PATH: process.env.PATH,
        DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(port),
        DEMO: 'false',
        ADMIN_TOKEN: ADMIN,
        ROLES: 'gateway,api',
        LOG_LEVEL: 'warn',
        OPENAI_BASE_URL: `${fake.url}/v1`,
        RECORDER_FLUSH_MS: '5000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (d) => {
      output += d
    })
    child.stderr!.on('data', (d) => {
      output += d
    })
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)))

    for (let i = 0; ; i++) {
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
      if (ok) break
      if (i > 300 || child.exitCode !== null) throw new Error(`server did not start:\n${output}`)
      await new Promise((r) => setTimeout(r, 100))
    }

    const admin = async (method: string, path: string, body: object) => {
      const res = await fetch(`${base}/api/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      expect(res.status, await res.clone().text()).toBeLessThan(300)
      return res.json()
    }
    await admin('POST', '/teams', { teamId: 'core', name: 'Core' })
    await admin('POST', '/users', { userId: 'sam', email: 'sam@example.com', name: 'Sam', teamId: 'core' })
    await admin('PUT', '/models/gpt-slow', {
      provider: 'openai',
      upstreamModel: 'gpt-4o-mini@slow',
      inputPerM: 0.15,
      outputPerM: 0.6,
    })
    await admin('PUT', '/models/gpt-fast', {
      provider: 'openai',
      upstreamModel: 'gpt-4o-mini',
      inputPerM: 0.15,
      outputPerM: 0.6,
    })
    const { plaintext } = await admin('POST', '/keys', { userId: 'sam', name: 'load' })

    const answered: string[] = []
    let refused = 0
    let completed = 0
    let signalled!: () => void
    const signalSent = new Promise<void>((r) => {
      signalled = r
    })
    const one = async (i: number) => {
      try {
        const res = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${plaintext}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            model: i % 2 ? 'gpt-slow' : 'gpt-fast',
            stream: i % 2 === 1,
            messages: [{ role: 'user', content: `request ${i}` }],
          }),
        })
        const text = await res.text()
        if (res.status === 200 && text.length > 0) answered.push(res.headers.get('x-request-id')!)
      } catch {
        refused++
      }
      if (++completed === 20) signalled()
    }
    // Waves of requests keep arriving before, during and after the signal.
    const inFlight: Promise<void>[] = []
    for (let i = 0; i < 60; i++) inFlight.push(one(i))
    await signalSent
    child.kill('SIGTERM')
    for (let i = 60; i < 100; i++) inFlight.push(one(i))
    await Promise.all(inFlight)
    const code = await Promise.race([
      exited,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`server still running 30 s after SIGTERM:\n${output}`)), 30_000),
      ),
    ])
    expect(code, output).toBe(0)
    expect(answered.length).toBeGreaterThan(20)

    const wh = createWarehouse({ path: join(dataDir, 'clickhouse') })
    try {
      const rows = await wh.query<{ id: string; n: string }>(
        'SELECT toString(request_id) AS id, count() AS n FROM requests GROUP BY id',
      )
      const counts = new Map(rows.map((r) => [r.id, Number(r.n)]))
      const missing = answered.filter((id) => counts.get(id) !== 1)
      expect(missing, `answered ${answered.length}, refused ${refused}`).toEqual([])
    } finally {
      await wh.close()
    }
  })
})

describe('SIGTERM after a WebSocket upgrade on /v1/responses', () => {
  const services: ServiceProcess[] = []
  const wsDataDirs: string[] = []
  afterAll(async () => {
    for (const service of services) await service.kill()
    for (const d of wsDataDirs) rmSync(d, { recursive: true, force: true })
  })

  // With the API role, the WebSocket server of /api/live takes every upgrade
  // over and nothing else would end a refused one; a gateway-only process has
  // no upgrade listener, so Node hands the request over as a plain one. A
  // gateway-only process has no admin API to make a key: its refusal is the 401.
  it.each([
    { roles: 'gateway,api', status: 426 },
    { roles: 'gateway', status: 401 },
  ])(
    '$roles: refuses the upgrade ($status), closes that socket, and exits within 10 s',
    async ({ roles, status }) => {
      const wsDataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-sigterm-ws-'))
      wsDataDirs.push(wsDataDir)
      const service = await startService('gateway', {
        DATA_DIR: wsDataDir,
        HOST: '127.0.0.1',
        PORT: String(await freePort()),
        DEMO: 'false',
        ADMIN_TOKEN: ADMIN,
        ROLES: roles,
        LOG_LEVEL: 'warn',
      })
      services.push(service)
      const admin = async (path: string, body: object) => {
        const res = await fetch(`${service.url}/api/admin${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
        expect(res.status, await res.clone().text()).toBeLessThan(300)
        return res.json()
      }
      let plaintext = 'tm_not-a-key'
      if (status === 426) {
        await admin('/teams', { teamId: 'core', name: 'Core' })
        await admin('/users', { userId: 'cody', email: 'cody@example.com', name: 'Cody', teamId: 'core' })
        plaintext = (await admin('/keys', { userId: 'cody', name: 'codex' })).plaintext
      }

      // As the Codex CLI does first; this client never closes its side.
      const { port } = new URL(service.url)
      const socket = connect(Number(port), '127.0.0.1')
      let answer = ''
      let answered!: () => void
      const gotAnswer = new Promise<void>((resolve) => {
        answered = resolve
      })
      let ended = false
      socket.once('end', () => {
        ended = true
      })
      socket.on('data', (d) => {
        answer += d
        if (answer.includes('\r\n\r\n')) answered()
      })
      socket.write(
        'GET /v1/responses HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
          `Authorization: Bearer ${plaintext}\r\n\r\n`,
      )
      await gotAnswer
      expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
      expect(answer.toLowerCase()).toContain('connection: close')
      expect(await service.terminate(10_000)).toBe(0)
      expect(ended).toBe(true)
      socket.destroy()
    },
  )
})
