import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'vitest'
import { freePort } from './free-port.ts'

/**
 * One product process (`node services/src/server.ts`) with exactly the given
 * environment (nothing inherited but PATH), its stdout and stderr kept for
 * assertions about logs.
 */
export interface ServiceProcess {
  name: string
  url: string
  env: Record<string, string>
  child: ChildProcess
  /** Everything it wrote to stdout and stderr so far. */
  output(): string
  /** SIGTERM, then the exit code (null if it died of a signal). */
  terminate(timeoutMs?: number): Promise<number | null>
  kill(): Promise<void>
}

export async function startService(
  name: string,
  env: Record<string, string>,
  opts: { readyPath?: string; timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['services/src/server.ts'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d
  })
  child.stderr!.on('data', (d: Buffer) => {
    out += d
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const url = `http://${env.HOST ?? '127.0.0.1'}:${env.PORT}`
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${name} exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${out}`,
      )
    }
    const ok = await fetch(`${url}${opts.readyPath ?? '/readyz'}`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} not ready after ${opts.timeoutMs ?? 60_000} ms:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    name,
    url,
    env,
    child,
    output: () => out,
    async terminate(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL')
          reject(new Error(`${name} still running ${timeoutMs} ms after SIGTERM:\n${out}`))
        }, timeoutMs)
      })
      try {
        return await Promise.race([exited, timeout])
      } finally {
        clearTimeout(timer)
      }
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await exited
    },
  }
}

/** A product process of its own: a fresh data directory and a free loopback port. */
export interface LocalService extends ServiceProcess {
  port: number
  dataDir: string
  /** SIGKILL if it still runs, then remove its data directory. */
  dispose(): Promise<void>
}

/**
 * `startService` on a free loopback port with a data directory under the
 * system's temp dir, DEMO off and warnings only; `env` adds to or overrides
 * that (ROLES, ADMIN_TOKEN, upstream URLs: what the test depends on).
 */
export async function startLocalService(
  name: string,
  env: Record<string, string>,
  opts: { readyPath?: string; timeoutMs?: number } = {},
): Promise<LocalService> {
  const dataDir = mkdtempSync(join(tmpdir(), `tokenmeter-${name.replace(/\W+/g, '-')}-`))
  const port = await freePort()
  let service: ServiceProcess
  try {
    service = await startService(
      name,
      { HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, DEMO: 'false', LOG_LEVEL: 'warn', ...env },
      opts,
    )
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  }
  return {
    ...service,
    port,
    dataDir,
    async dispose() {
      await service.kill()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/**
 * One call of a process's admin API with its own ADMIN_TOKEN. A status of 300
 * or more fails the test, with the answer; returns the parsed body (undefined
 * when empty).
 */
export async function callAdmin(
  service: Pick<ServiceProcess, 'url' | 'env'>,
  method: string,
  path: string,
  body?: object,
) {
  const res = await fetch(`${service.url}/api/admin${path}`, {
    method,
    headers: {
      authorization: `Bearer ${service.env.ADMIN_TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  expect(res.status, `${method} ${path}: ${text}`).toBeLessThan(300)
  return text ? JSON.parse(text) : undefined
}
