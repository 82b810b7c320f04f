import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { startTestStack, type TestStack } from './helpers/test-core.ts'

// /readyz must mean what orchestrators expect, per role, in server mode over
// real HTTP: the API is not ready without ClickHouse, a gateway still is
// (its rows spill).
let clickhouse: ClickHouseHttp
let api: TestStack
let gateway: TestStack

beforeAll(async () => {
  clickhouse = await startClickHouseHttp()
  api = await startTestStack({ env: { CLICKHOUSE_URL: clickhouse.url }, roles: ['api'] })
  gateway = await startTestStack({ env: { CLICKHOUSE_URL: clickhouse.url }, roles: ['gateway'] })
})
afterAll(async () => {
  await api?.close()
  await gateway?.close()
  await clickhouse?.close()
})

const ready = async (stack: TestStack) => {
  const res = await stack.app.inject({ method: 'GET', url: '/readyz' })
  return { status: res.statusCode, body: res.json() as { ok: boolean; clickhouse: boolean } }
}

describe('health endpoints', () => {
  it('/healthz answers while the process lives', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  })

  it('/readyz follows ClickHouse for the API and not for the gateway', async () => {
    expect(await ready(api)).toEqual({ status: 200, body: { ok: true, clickhouse: true } })
    await clickhouse.stop()
    try {
      expect(await ready(api)).toMatchObject({ status: 503, body: { ok: false, clickhouse: false } })
      expect(await ready(gateway)).toMatchObject({ status: 200, body: { ok: true, clickhouse: false } })
    } finally {
      await clickhouse.start()
    }
    expect((await ready(api)).status).toBe(200)
  })
})
