import { type ChildProcess, spawn } from 'node:child_process'

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
