import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { callAdmin, type LocalService, startLocalService } from './helpers/service-process.ts'

// The built-in simulated provider (a fake LLM upstream on a loopback port) is
// the demo's upstream: the real server process starts it only with DEMO=true.
// Without it, a request for a `simulated` facade gets a clear 503 in the
// error envelope of the API the client speaks, instead of a simulator that
// nobody asked for.

let service: LocalService | undefined

afterEach(async () => {
  await service?.dispose()
  service = undefined
})

/** TCP ports a process listens on: its socket inodes matched with the kernel's LISTEN entries. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1]!)
    } catch (err) {
      // A descriptor closed between readdir and readlink is not a listening socket.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  const ports = new Set<number>()
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the tenth field.
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!))
        ports.add(Number.parseInt(f[1]!.split(':')[1]!, 16))
    }
  }
  return [...ports].sort((a, b) => a - b)
}

async function startGateway(demo: boolean): Promise<{ url: string; port: number; pid: number }> {
  service = await startLocalService(demo ? 'demo gateway' : 'gateway', {
    ROLES: 'gateway,api',
    ADMIN_TOKEN: 'simulator-admin-token-0123456789',
    DEMO: String(demo),
    // A small demo, no live traffic: this test sends its own requests.
    DEMO_HISTORY_ROWS: '50',
    DEMO_HISTORY_DAYS: '1',
    DEMO_TRAFFIC_RPS: '0',
  })
  return { url: service.url, port: service.port, pid: service.child.pid! }
}

/** A team, a user, a `simulated` facade and a key for it, through the admin API. */
async function simulatedFacadeKey(service: LocalService): Promise<string> {
  await callAdmin(service, 'POST', '/teams', { teamId: 'sim-team', name: 'Sim team' })
  await callAdmin(service, 'POST', '/users', {
    userId: 'sim-user',
    email: 's@example.com',
    name: 'S',
    teamId: 'sim-team',
  })
  await callAdmin(service, 'PUT', '/models/sim-chat', {
    provider: 'simulated',
    upstreamModel: 'sim-small',
    inputPerM: 1,
    outputPerM: 2,
  })
  const { plaintext } = await callAdmin(service, 'POST', '/keys', { userId: 'sim-user', name: 'sim' })
  return plaintext
}

const post = (url: string, key: string, path: string, body: object) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      'anthropic-version': '2023-06-01',
    },
    body: JSON.stringify(body),
  })
const chat = { model: 'sim-chat', messages: [{ role: 'user', content: 'hello' }] }
const messages = { ...chat, max_tokens: 16 }

describe('the built-in simulated provider', () => {
  it('DEMO=false: is not started, and a simulated facade gets a 503 saying it needs DEMO=true', async () => {
    const { url, port, pid } = await startGateway(false)
    expect(listeningPorts(pid)).toEqual([port])
    const key = await simulatedFacadeKey(service!)

    const openai = await post(url, key, '/v1/chat/completions', chat)
    const openaiBody = await openai.json()
    expect(openai.status, JSON.stringify(openaiBody)).toBe(503)
    expect(openaiBody.error).toMatchObject({ type: 'server_error', code: 'upstream_not_configured' })
    expect(openaiBody.error.message).toContain('runs only with DEMO=true')

    const anthropic = await post(url, key, '/v1/messages', messages)
    const anthropicBody = await anthropic.json()
    expect(anthropic.status, JSON.stringify(anthropicBody)).toBe(503)
    expect(anthropicBody).toMatchObject({ type: 'error', error: { code: 'upstream_not_configured' } })
    expect(anthropicBody.error.message).toContain('runs only with DEMO=true')

    // No request started one on demand either.
    expect(listeningPorts(pid)).toEqual([port])
    expect(await service!.terminate()).toBe(0)
  })

  it('DEMO=true: runs in the process on a loopback port and serves the facade', async () => {
    const { url, port, pid } = await startGateway(true)
    const ports = listeningPorts(pid)
    expect(ports).toHaveLength(2)
    expect(ports).toContain(port)
    const key = await simulatedFacadeKey(service!)

    const openai = await post(url, key, '/v1/chat/completions', chat)
    const openaiBody = await openai.json()
    expect(openai.status, JSON.stringify(openaiBody)).toBe(200)
    expect(openaiBody.choices[0].message.content.length).toBeGreaterThan(0)

    const anthropic = await post(url, key, '/v1/messages', messages)
    const anthropicBody = await anthropic.json()
    expect(anthropic.status, JSON.stringify(anthropicBody)).toBe(200)
    expect(anthropicBody.type).toBe('message')
    expect(await service!.terminate()).toBe(0)
  })
})
