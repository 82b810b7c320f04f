import { readFileSync } from 'node:fs'
import { parse } from 'yaml'

/**
 * Reads docker-compose.yml the way Compose does for what we check here:
 * YAML anchors and `<<` merge keys resolved, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and `$$` substituted
 * from `vars` (the user's shell or .env). Lets the tests start each service's
 * command outside Docker with the environment the compose file gives it.
 */
export const COMPOSE_PATH = new URL('../../docker-compose.yml', import.meta.url)
export const DOCKERFILE_PATH = new URL('../../Dockerfile', import.meta.url)

export type ComposeFile = {
  name?: string
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
}

export type ComposeService = {
  image?: string
  build?: unknown
  command?: string[] | string
  environment?: Record<string, string | number | boolean | null> | string[]
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number }
  restart?: string
  ports?: string[]
  volumes?: string[]
  depends_on?: Record<string, { condition: string }>
  deploy?: { replicas?: number; resources?: { limits?: { cpus?: string; memory?: string } } }
  stop_grace_period?: string
  [key: string]: unknown
}

export class MissingVariableError extends Error {}

/** Substitutes Compose variables in one string. */
export function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])((?:[^}])*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, name?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
      if (match === '$$') return '$'
      if (bare) return vars[bare] ?? ''
      const value = vars[name!]
      const missing = colon ? value === undefined || value === '' : value === undefined
      if (!op) return value ?? ''
      if (op === '-') return missing ? (arg ?? '') : value!
      if (missing) throw new MissingVariableError(`${name}: ${arg || 'required variable is not set'}`)
      return value!
    },
  )
}

function interpolateDeep(node: unknown, vars: Record<string, string | undefined>): unknown {
  if (typeof node === 'string') return interpolate(node, vars)
  if (Array.isArray(node)) return node.map((n) => interpolateDeep(n, vars))
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v, vars)]))
  }
  return node
}

/** The compose file as YAML, anchors and merge keys resolved, nothing substituted. */
export function readComposeRaw(): ComposeFile {
  return parse(readFileSync(COMPOSE_PATH, 'utf8'), { merge: true }) as ComposeFile
}

/** The compose file with every variable substituted from `vars`. */
export function loadCompose(vars: Record<string, string | undefined>): ComposeFile {
  return interpolateDeep(readComposeRaw(), vars) as ComposeFile
}

/** Every variable name the compose file reads from the user's environment. */
export function composeVariables(): string[] {
  const text = readFileSync(COMPOSE_PATH, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
  const names = new Set<string>()
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1]!)
  return [...names].sort()
}

/** ENV of the Dockerfile's final stage (what every container starts with). */
export function dockerfileEnv(): Record<string, string> {
  const text = readFileSync(DOCKERFILE_PATH, 'utf8')
  const stages = text.split(/^FROM\s/m)
  const last = stages[stages.length - 1] ?? ''
  const env: Record<string, string> = {}
  for (const m of last.matchAll(/^ENV\s+(.+)$/gm)) {
    for (const pair of m[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) {
      env[pair[1]!] = pair[2]!.replace(/^"|"$/g, '')
    }
  }
  return env
}

/** A service's container environment: the Dockerfile's ENV overlaid with the compose `environment`. */
export function serviceEnv(compose: ComposeFile, service: string): Record<string, string> {
  const svc = compose.services[service]
  if (!svc) throw new Error(`no service ${service} in docker-compose.yml`)
  const env: Record<string, string> = svc.build ? dockerfileEnv() : {}
  const given = svc.environment ?? {}
  const entries = Array.isArray(given)
    ? given.map((e) => {
        const i = e.indexOf('=')
        return [e.slice(0, i), e.slice(i + 1)] as const
      })
    : Object.entries(given)
  for (const [k, v] of entries) if (v !== null && v !== undefined) env[k] = String(v)
  return env
}

/** Host ports a `ports:` entry publishes ("8787-8789:8787" -> 8787, 8788, 8789). */
export function publishedPorts(entry: string): number[] {
  const parts = entry.split(':')
  if (parts.length < 2) return []
  const host = parts.length === 3 ? parts[1]! : parts[0]!
  const [from, to] = host.split('-').map(Number)
  const out: number[] = []
  for (let p = from!; p <= (to ?? from!); p++) out.push(p)
  return out
}
