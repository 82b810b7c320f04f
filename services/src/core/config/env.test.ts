import { describe, expect, it } from 'vitest'
import { parseEnv } from './env.ts'

describe('named upstreams (UPSTREAMS)', () => {
  it('reads each name from UPSTREAM_<NAME>_*, the credential itself or by the variable that holds it', () => {
    const env = parseEnv({
      UPSTREAMS: 'openrouter, Azure,my-vllm',
      UPSTREAM_OPENROUTER_BASE_URL: 'https://openrouter.ai/api/v1',
      UPSTREAM_OPENROUTER_API_KEY_ENV: 'OR_KEY',
      OR_KEY: 'sk-or',
      UPSTREAM_AZURE_BASE_URL: 'https://r.openai.azure.com/openai/v1',
      UPSTREAM_AZURE_API_KEY: 'az',
      UPSTREAM_AZURE_API_VERSION: '2024-10-21',
      UPSTREAM_MY_VLLM_BASE_URL: 'http://10.0.0.5:8000/v1',
      UPSTREAM_MY_VLLM_CATALOGUE: 'none',
    })
    expect(env.namedUpstreams).toEqual([
      {
        name: 'openrouter',
        baseUrl: 'https://openrouter.ai/api/v1',
        apiKey: 'sk-or',
        apiVersion: undefined,
        catalogue: 'openrouter',
      },
      {
        name: 'azure',
        baseUrl: 'https://r.openai.azure.com/openai/v1',
        apiKey: 'az',
        apiVersion: '2024-10-21',
        catalogue: 'azure',
      },
      {
        name: 'my-vllm',
        baseUrl: 'http://10.0.0.5:8000/v1',
        apiKey: undefined,
        apiVersion: undefined,
        catalogue: 'none',
      },
    ])
    expect(parseEnv({}).namedUpstreams).toEqual([])
  })

  it('refuses to start with a message naming the variable', () => {
    expect(() => parseEnv({ UPSTREAMS: 'groq' })).toThrow(/UPSTREAM_GROQ_BASE_URL/)
    expect(() => parseEnv({ UPSTREAMS: 'groq', UPSTREAM_GROQ_BASE_URL: 'not a url' })).toThrow(
      /UPSTREAM_GROQ_BASE_URL/,
    )
    expect(() =>
      parseEnv({
        UPSTREAMS: 'groq',
        UPSTREAM_GROQ_BASE_URL: 'https://g/v1',
        UPSTREAM_GROQ_API_KEY_ENV: 'NOPE',
      }),
    ).toThrow(/UPSTREAM_GROQ_API_KEY_ENV: the variable NOPE it names is not set/)
    expect(() => parseEnv({ UPSTREAMS: 'openai' })).toThrow(/UPSTREAMS.*built in/)
    expect(() => parseEnv({ UPSTREAMS: 'bad_name!' })).toThrow(/UPSTREAMS/)
    expect(() => parseEnv({ MODEL_PASSTHROUGH: 'maybe' })).toThrow(/MODEL_PASSTHROUGH/)
  })
})

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

describe('provider base URLs', () => {
  it('take an origin without a path as its /v1 API (the SDKs spell ANTHROPIC_BASE_URL without it)', () => {
    const env = parseEnv({
      OPENAI_BASE_URL: 'http://10.0.0.5:8000',
      ANTHROPIC_BASE_URL: 'https://api.anthropic.com/',
    })
    expect(env.OPENAI_BASE_URL).toBe('http://10.0.0.5:8000/v1')
    expect(env.ANTHROPIC_BASE_URL).toBe('https://api.anthropic.com/v1')
    // A path is the user's: kept as given.
    const proxied = parseEnv({ ANTHROPIC_BASE_URL: 'https://gw.example.com/anthropic/v1' })
    expect(proxied.ANTHROPIC_BASE_URL).toBe('https://gw.example.com/anthropic/v1')
    expect(parseEnv({}).OPENAI_BASE_URL).toBe('https://api.openai.com/v1')
  })
})
