import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openViewer } from '../scripts/bench/lib/usage-page-viewer.ts'

// The live benchmark's simulated Usage page viewer against a server that
// resets every connection: each lost answer is counted, none ends the process.

let server: Server
let origin = ''

beforeAll(async () => {
  server = createServer((req) => req.socket.destroy())
  server.on('upgrade', (_req, socket) => socket.destroy())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  origin = `http://127.0.0.1:${port}`
})
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
})

describe('usage page viewer (bench)', () => {
  it('counts requests that get no answer instead of throwing', async () => {
    const viewer = openViewer({ origin, key: 'tm_bench', filter: { range: '24h' }, view: 'team' })
    // Its page load's four requests fail; then its live socket does, which ends `ready`.
    await expect(viewer.ready).rejects.toThrow(/live socket/)
    expect(viewer.networkErrors).toBe(4)
    expect(viewer.lastNetworkError).toMatch(/^\/api\//)
    expect(viewer.failedRequests).toBe(0)
    expect(viewer.inflight).toBe(0)
    viewer.close()
  })
})
