import { describe, expect, it } from 'vitest'
import { parseEnv } from './env.ts'

describe('env', () => {
  it('ROLES: a bad entry stops start-up with a message naming it', () => {
    expect(parseEnv({ ROLES: 'gateway, api' }).ROLES).toBe('gateway, api')
    expect(() => parseEnv({ ROLES: 'gateway,apii' })).toThrow(
      /ROLES: unknown role "apii"; use .*gateway, api, worker, web/,
    )
    expect(() => parseEnv({ ROLES: 'gateway,' })).toThrow(/ROLES: unknown role ""/)
  })

  it('TRUST_PROXY: off by default; true, a hop count or addresses', () => {
    expect(parseEnv({}).TRUST_PROXY).toBe(false)
    expect(parseEnv({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true)
    expect(parseEnv({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2)
    expect(parseEnv({ TRUST_PROXY: '10.0.0.0/8,127.0.0.1' }).TRUST_PROXY).toBe('10.0.0.0/8,127.0.0.1')
  })

  it('METRICS_TOKEN must be long enough to be a secret', () => {
    expect(() => parseEnv({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN must be at least 16/)
  })
})
