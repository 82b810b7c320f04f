import { afterAll, beforeAll } from 'vitest'
import { worstCaseSuite } from './budget-worst-case-suite.ts'
import { type RedisProcess, startRedis } from './helpers/redis-server.ts'

// Server mode: the same suite with the counters in a real redis-server (one Lua script per reserve).
let redis: RedisProcess
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => redis?.stop())
worstCaseSuite('redis', () => ({ REDIS_URL: redis.url }))
