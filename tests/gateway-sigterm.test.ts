import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createWarehouse } from '../services/src/core/storage/warehouse.ts'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { callAdmin, type LocalService, startLocalService } from './helpers/service-process.ts'

// The real server process under load gets SIGTERM: every request that was
// answered with a 200 must be in ClickHouse exactly once afterwards. The
// server runs embedded, so this process opens the same data directory only
// after the server has exited (one process per data directory).

const ADMIN = 'sigterm-admin-token-0123456789'
let fake: FakeUpstream | undefined
let service: LocalService | undefined

afterAll(async () => {
  await service?.dispose()
  await fake?.close()
})

describe('SIGTERM under load', () => {
  it('keeps every answered request', async () => {
    fake = await createFakeUpstream({ slowChunkMs: 20 })
    service = await startLocalService('sigterm', {
      ADMIN_TOKEN: ADMIN,
      ROLES: 'gateway,api',
      OPENAI_BASE_URL: `${fake.url}/v1`,
      RECORDER_FLUSH_MS: '5000',
    })
    const gateway = service
    const admin = (method: string, path: string, body: object) => callAdmin(gateway, method, path, body)
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
        const res = await fetch(`${gateway.url}/v1/chat/completions`, {
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
    const exitCode = gateway.terminate()
    for (let i = 60; i < 100; i++) inFlight.push(one(i))
    await Promise.all(inFlight)
    expect(await exitCode, gateway.output()).toBe(0)
    expect(answered.length).toBeGreaterThan(20)

    const wh = createWarehouse({ path: join(gateway.dataDir, 'clickhouse') })
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
  const services: LocalService[] = []
  afterAll(async () => {
    for (const service of services) await service.dispose()
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
      const service = await startLocalService('gateway', { ADMIN_TOKEN: ADMIN, ROLES: roles })
      services.push(service)
      const admin = (path: string, body: object) => callAdmin(service, 'POST', path, body)
      let plaintext = 'tm_not-a-key'
      if (status === 426) {
        await admin('/teams', { teamId: 'core', name: 'Core' })
        await admin('/users', { userId: 'cody', email: 'cody@example.com', name: 'Cody', teamId: 'core' })
        plaintext = (await admin('/keys', { userId: 'cody', name: 'codex' })).plaintext
      }

      // As the Codex CLI does first; this client never closes its side.
      const socket = connect(service.port, '127.0.0.1')
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
