import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCLinter } from 'dclint'
import { describe, expect, it } from 'vitest'
import { envSchema, parseEnv } from '../services/src/core/config/env.ts'
import {
  type ComposeService,
  composeVariables,
  dockerfileEnv,
  interpolate,
  loadCompose,
  MissingVariableError,
  publishedPorts,
  serviceEnv,
} from './helpers/compose-env.ts'

// No Docker engine runs on these machines, so docker-compose.yml is checked
// here for what can be checked without one: its structure, and that every
// service's environment is one the product accepts. tests/multiprocess.test.ts
// then starts those same environments as processes.

const ROOT = new URL('..', import.meta.url).pathname
/** What a user must set; everything else has a default in the compose file. */
const REQUIRED = {
  ADMIN_TOKEN: 'compose-admin-token-0123456789',
  SESSION_SECRET: 'compose-session-secret-0123456789',
}
const compose = loadCompose(REQUIRED)
const APP = ['gateway', 'api', 'worker']
const ALL = ['clickhouse', 'redis', ...APP]
const svc = (name: string) => compose.services[name] as ComposeService
const roles = (name: string) => (serviceEnv(compose, name).ROLES ?? '').split(',').map((r) => r.trim())

function cmd(test: string[] | string | undefined): string {
  return Array.isArray(test) ? test.join(' ') : (test ?? '')
}

/** Seconds in a Compose duration ("40s", "1m30s"). */
function seconds(d: string | undefined): number {
  let s = 0
  for (const m of (d ?? '').matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    s += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h']
  }
  return s
}

describe('docker-compose.yml: schema', () => {
  // dclint carries the current Compose Specification JSON schema and a set of
  // checks; only its style rules (key and service order) are off.
  const linter = new DCLinter({
    rules: { 'service-keys-order': 0, 'services-alphabetical-order': 0, 'top-level-properties-order': 0 },
    quiet: false,
    debug: false,
    exclude: [],
  })
  const lint = (path: string) =>
    linter
      .lintFiles([path], false)[0]!
      .messages.map((m: { rule: string; message: string }) => `${m.rule}: ${m.message}`)

  it('is a valid Compose file, with nothing the linter objects to', () => {
    expect(lint(join(ROOT, 'docker-compose.yml'))).toEqual([])
  })

  it('(the check rejects what Compose would)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-compose-'))
    try {
      const bad = join(dir, 'docker-compose.yml')
      writeFileSync(bad, 'services:\n  app:\n    image: x:1\n    replica: 2\n')
      expect(lint(bad).join('\n')).toMatch(/invalid-schema/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('docker-compose.yml: services', () => {
  it('runs ClickHouse, Redis, the gateway, the API with the dashboard and the worker', () => {
    expect(Object.keys(compose.services).sort()).toEqual([...ALL].sort())
    expect(roles('gateway')).toContain('gateway')
    expect(roles('api').sort()).toEqual(['api', 'web'])
    expect(roles('worker')).toEqual(['worker'])
  })

  it('pins every image: ClickHouse on the 25.8 LTS line, Redis on a minor version, the app built here', () => {
    expect(svc('clickhouse').image).toMatch(/^clickhouse\/clickhouse-server:25\.8(\.\d+)*(-[a-z]+)?$/)
    expect(svc('redis').image).toMatch(/^redis:\d+\.\d+(\.\d+)?(-[a-z]+)?$/)
    for (const name of APP) {
      expect(svc(name).build, name).toBe('.')
      expect(svc(name).image, name).not.toMatch(/:latest$/)
    }
  })

  it('gives every service a restart policy, a health check and resource limits', () => {
    for (const name of ALL) {
      const s = svc(name)
      expect(s.restart, name).toMatch(/^(always|unless-stopped|on-failure)/)
      expect(cmd(s.healthcheck?.test), name).not.toBe('')
      expect(s.deploy?.resources?.limits?.cpus, name).toMatch(/^\d+(\.\d+)?$/)
      expect(s.deploy?.resources?.limits?.memory, name).toMatch(/^\d+[kmg]$/)
    }
  })

  it('checks app health at /readyz with node (the image has no curl or wget), on the port the app listens on', () => {
    for (const name of APP) {
      const test = svc(name).healthcheck!.test as string[]
      expect(test[0], name).toBe('CMD')
      expect(test[1], name).toBe('node')
      const port = serviceEnv(compose, name).PORT
      expect(test.join(' '), name).toContain(`fetch('http://127.0.0.1:${port}/readyz')`)
      // The script itself must be valid JavaScript.
      expect(() => new Function(test[3]!), name).not.toThrow()
    }
    // The ClickHouse image has wget (its own entrypoint uses it); /ping needs no credentials.
    expect(cmd(svc('clickhouse').healthcheck?.test)).toMatch(/wget .*:8123\/ping/)
    expect(cmd(svc('redis').healthcheck?.test)).toContain('redis-cli ping')
  })

  it('starts the app only once ClickHouse and Redis are healthy, and gives SIGTERM time to flush', () => {
    const timeout = Number(serviceEnv(compose, 'gateway').CLICKHOUSE_INSERT_TIMEOUT_MS) / 1000
    for (const name of APP) {
      expect(svc(name).depends_on, name).toEqual({
        clickhouse: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
      })
      // A graceful stop may wait for one insert to time out before spilling.
      expect(seconds(svc(name).stop_grace_period), name).toBeGreaterThan(timeout)
    }
  })

  it('runs Redis durable (AOF, fsync every second) with noeviction', () => {
    const c = cmd(svc('redis').command)
    expect(c).toMatch(/^redis-server /)
    expect(c).toContain('--appendonly yes')
    expect(c).toContain('--appendfsync everysec')
    expect(c).toContain('--maxmemory-policy noeviction')
    expect(svc('redis').volumes).toContain('redis-data:/data')
    // Our own spill budget stays well below maxmemory.
    const maxmemory = /--maxmemory (\d+)gb/.exec(c)
    expect(maxmemory).not.toBeNull()
    const budget = Number(serviceEnv(compose, 'gateway').REDIS_SPILL_MAX_BYTES)
    expect(budget).toBeLessThan(Number(maxmemory![1]) * 1024 ** 3 * 0.5)
  })

  it('keeps ClickHouse data on a volume and mounts its config files read-only, one file each', () => {
    const volumes = svc('clickhouse').volumes ?? []
    expect(volumes).toContain('clickhouse-data:/var/lib/clickhouse')
    const mounts = volumes.filter((v) => v.startsWith('./deploy/'))
    expect(mounts.length).toBe(2)
    for (const m of mounts) {
      const [src, dest, mode] = m.split(':')
      expect(mode, m).toBe('ro')
      expect(existsSync(join(ROOT, src!)), m).toBe(true)
      // A directory mounted over config.d would hide the image's own listen
      // config; over users.d it would stop the entrypoint creating our user.
      expect(dest, m).toMatch(/^\/etc\/clickhouse-server\/(config|users)\.d\/[^/]+\.xml$/)
    }
  })

  it('runs two gateway replicas, each on its own host port, none colliding with another service', () => {
    const gateway = svc('gateway')
    expect(gateway.deploy?.replicas).toBe(2)
    const gatewayPorts = (gateway.ports ?? []).flatMap(publishedPorts)
    expect(gatewayPorts.length).toBeGreaterThanOrEqual(2)
    const all = Object.values(compose.services).flatMap((s) => (s.ports ?? []).flatMap(publishedPorts))
    expect(new Set(all).size).toBe(all.length)
    for (const name of APP) {
      for (const p of svc(name).ports ?? [])
        expect(p.split(':').at(-1), name).toBe(serviceEnv(compose, name).PORT)
    }
  })

  it('gives each gateway replica a spool of its own, and a replay worker to drain it', () => {
    const dataDir = serviceEnv(compose, 'gateway').DATA_DIR
    // An anonymous volume: a named one would be shared by the replicas, and
    // segment names and locks carry pids, which repeat across containers.
    expect(svc('gateway').volumes).toEqual([dataDir])
    expect(roles('gateway')).toContain('worker')
    // No named volume is mounted by two services either.
    const owners = new Map<string, string>()
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0]!
        if (!/^[a-z]/.test(src) || v.split(':').length < 2) continue
        expect(owners.get(src), `${src} mounted by ${owners.get(src)} and ${name}`).toBeUndefined()
        owners.set(src, name)
      }
    }
    expect(Object.keys(compose.volumes ?? {}).sort()).toEqual([...owners.keys()].sort())
  })
})

describe('docker-compose.yml: environment', () => {
  it('refuses to start without ADMIN_TOKEN and SESSION_SECRET', () => {
    expect(() => loadCompose({ SESSION_SECRET: REQUIRED.SESSION_SECRET })).toThrow(MissingVariableError)
    expect(() => loadCompose({ ADMIN_TOKEN: REQUIRED.ADMIN_TOKEN })).toThrow(MissingVariableError)
    expect(() => loadCompose({ ...REQUIRED, ADMIN_TOKEN: '' })).toThrow(/ADMIN_TOKEN/)
  })

  it("gives every app service an environment the product's env schema accepts, in server mode", () => {
    for (const name of APP) {
      const env = serviceEnv(compose, name)
      for (const key of Object.keys(env)) {
        if (key === 'NODE_ENV') continue
        expect(Object.keys(envSchema.shape), `${name}: ${key} is not a Tokenmeter setting`).toContain(key)
      }
      const parsed = parseEnv(env)
      expect(parsed.CLICKHOUSE_URL, name).toBe('http://clickhouse:8123')
      expect(parsed.REDIS_URL, name).toBe('redis://redis:6379')
      expect(parsed.CLICKHOUSE_USER, name).toBe(serviceEnv(compose, 'clickhouse').CLICKHOUSE_USER)
      expect(parsed.CLICKHOUSE_PASSWORD, name).toBe(serviceEnv(compose, 'clickhouse').CLICKHOUSE_PASSWORD)
      expect(parsed.HOST, name).toBe('0.0.0.0')
      expect(parsed.DEMO, name).toBe(false)
      expect(parsed.ADMIN_TOKEN, name).toBe(REQUIRED.ADMIN_TOKEN)
      expect(parsed.SESSION_SECRET, name).toBe(REQUIRED.SESSION_SECRET)
      expect(parsed.DATA_DIR, name).toBe('/app/data')
    }
  })

  it('passes what the user sets through to every app service, and the schema accepts the defaults', () => {
    const custom = loadCompose({
      ...REQUIRED,
      LOG_LEVEL: 'warn',
      RAW_RETENTION_DAYS: '30',
      OPENAI_API_KEY: 'sk-x',
    })
    for (const name of APP) {
      const parsed = parseEnv(serviceEnv(custom, name))
      expect(parsed.LOG_LEVEL).toBe('warn')
      expect(parsed.RAW_RETENTION_DAYS).toBe(30)
      expect(parsed.OPENAI_API_KEY).toBe('sk-x')
    }
    // Defaults in the compose file equal the product's own.
    const defaults = parseEnv({})
    const env = parseEnv(serviceEnv(compose, 'gateway'))
    for (const key of [
      'RECORDER_MAX_ROWS',
      'RECORDER_FLUSH_MS',
      'SPOOL_MAX_BYTES',
      'UPSTREAM_TIMEOUT_MS',
    ] as const) {
      expect(env[key], key).toBe(defaults[key])
    }
  })

  it('reads only documented settings from the environment (.env.example lists every schema variable)', () => {
    const schema = Object.keys(envSchema.shape)
    for (const v of composeVariables()) expect(schema, v).toContain(v)
    // Settings the compose file fixes on purpose are not read from the user's .env
    // (.env.example holds the embedded defaults: HOST=127.0.0.1, DEMO=true, ROLES=all).
    for (const fixed of ['HOST', 'PORT', 'DATA_DIR', 'ROLES', 'DEMO', 'CLICKHOUSE_URL', 'REDIS_URL']) {
      expect(composeVariables(), fixed).not.toContain(fixed)
    }
  })

  it('substitutes variables like Compose does', () => {
    const vars = { A: 'a', EMPTY: '' }
    // Compose syntax written with a placeholder, so it does not read as a JS template.
    const c = (text: string) => text.replaceAll('%{', '${')
    expect(interpolate(c('%{A:-x} %{B:-x} %{EMPTY:-x} %{EMPTY-x} $$HOME %{A}'), vars)).toBe('a x x  $HOME a')
    expect(() => interpolate(c('%{EMPTY:?must be set}'), vars)).toThrow('EMPTY: must be set')
    expect(interpolate(c('%{EMPTY?must be set}'), vars)).toBe('')
    expect(() => interpolate(c('%{B?must be set}'), vars)).toThrow(MissingVariableError)
  })
})

/** Enough XML checking for hand-written config: tags balance, one root `clickhouse`. */
function checkXml(text: string): string[] {
  const body = text.replace(/<\?xml[^>]*\?>/, '').replace(/<!--[\s\S]*?-->/g, '')
  const stack: string[] = []
  const roots: string[] = []
  for (const m of body.matchAll(/<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w.-]+="[^"]*")*)\s*(\/?)>/g)) {
    const [, close, name, , selfClose] = m
    if (close) {
      const open = stack.pop()
      if (open !== name) throw new Error(`</${name}> closes <${open}>`)
    } else if (!selfClose) {
      if (stack.length === 0) roots.push(name!)
      stack.push(name!)
    } else if (stack.length === 0) roots.push(name!)
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('><')}>`)
  if (/<(?![/!?A-Za-z_])/.test(body)) throw new Error('stray <')
  return roots
}

describe('deploy/clickhouse', () => {
  const dir = join(ROOT, 'deploy/clickhouse')
  const files = ['config.d', 'users.d'].flatMap((d) => readdirSync(join(dir, d)).map((f) => join(dir, d, f)))

  it('holds well-formed ClickHouse XML, every file mounted into the container', () => {
    const mounted = (svc('clickhouse').volumes ?? []).map((v) => join(ROOT, v.split(':')[0]!))
    expect(files.length).toBeGreaterThan(0)
    for (const f of files) {
      expect(checkXml(readFileSync(f, 'utf8')), f).toEqual(['clickhouse'])
      expect(mounted, f).toContain(f)
    }
  })

  it('keeps inserts synchronous and deduplicated into the rollups, and logs at information to the console', () => {
    const users = readFileSync(join(dir, 'users.d/tokenmeter.xml'), 'utf8')
    expect(users).toMatch(/<async_insert>0<\/async_insert>/)
    expect(users).toMatch(/<insert_deduplicate>1<\/insert_deduplicate>/)
    expect(users).toMatch(
      /<deduplicate_blocks_in_dependent_materialized_views>1<\/deduplicate_blocks_in_dependent_materialized_views>/,
    )
    expect(users).toMatch(/<max_partitions_per_insert_block>\d+<\/max_partitions_per_insert_block>/)
    const config = readFileSync(join(dir, 'config.d/tokenmeter.xml'), 'utf8')
    expect(config).toMatch(/<level>information<\/level>/)
    expect(config).toMatch(/<console>1<\/console>/)
  })
})

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')

  it('runs Node 24 (the engines field), as a non-root user, with the data directory owned by it', () => {
    const engines = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node as string
    const major = /(\d+)/.exec(engines)![1]
    for (const m of text.matchAll(/^FROM\s+(\S+)/gm)) expect(m[1]).toMatch(new RegExp(`^node:${major}-`))
    expect(text).toMatch(/^USER node$/m)
    const dataDir = dockerfileEnv().DATA_DIR!
    expect(text).toContain(`chown node:node ${dataDir}`)
    expect(text.search(/^RUN .*chown node:node/m)).toBeLessThan(text.search(/^VOLUME/m))
    expect(text).toMatch(/^CMD \["node", "services\/src\/server\.ts"\]$/m)
  })

  it('copies every workspace manifest before npm ci, and installs only the product workspaces', () => {
    const workspaces = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).workspaces as string[]
    const install = text.search(/^RUN npm ci/m)
    expect(install).toBeGreaterThan(0)
    for (const ws of workspaces) {
      const copy = text.indexOf(`COPY ${ws}/package.json ${ws}/`)
      expect(copy, `${ws}/package.json copied before npm ci`).toBeGreaterThan(0)
      expect(copy).toBeLessThan(install)
    }
    const installLine = text.slice(install).split('\n')[0]!
    expect(installLine).not.toContain('tests/clients')
    for (const ws of workspaces.filter((w) => !w.startsWith('tests/')))
      expect(installLine).toContain(`-w ${ws}`)
  })

  it('keeps in the image every package the services import (dev dependencies are pruned)', () => {
    const deps = Object.keys(
      JSON.parse(readFileSync(join(ROOT, 'services/package.json'), 'utf8')).dependencies as object,
    )
    expect(text).toContain('npm prune --omit=dev')
    const missing = new Set<string>()
    const seen = new Set<string>()
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name)
        if (e.isDirectory()) walk(p)
        else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
          const src = readFileSync(p, 'utf8')
          const specs = [
            ...src.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+'([^.'][^']*)'/gm),
            ...src.matchAll(/\bimport\(\s*'([^.'][^']*)'\s*\)/g),
          ]
          for (const m of specs) {
            const spec = m[1]!
            if (spec.startsWith('node:')) continue
            const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
            seen.add(pkg)
            if (!deps.includes(pkg)) missing.add(`${pkg} (${p.slice(ROOT.length)})`)
          }
        }
      }
    }
    walk(join(ROOT, 'services/src'))
    expect([...seen]).toEqual(expect.arrayContaining(['fastify', 'bullmq', 'ioredis', 'zod']))
    expect([...missing]).toEqual([])
  })

  it('keeps local data and secrets out of the build context', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const p of ['.env', 'data', '**/node_modules', '.git']) expect(ignore, p).toContain(p)
  })
})
