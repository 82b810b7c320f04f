import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

export interface Child {
  proc: ChildProcess
  pid: number
  /** The text after the ready marker on the line that announced readiness. */
  ready: string
  /** Every stdout line so far. */
  lines: string[]
  /** SIGTERM, then wait for exit (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<void>
}

/**
 * Starts a process and resolves once a stdout line starts with `marker`
 * (or matches it, for a RegExp). stderr is passed through so failures show.
 */
export function startChild(
  command: string,
  args: string[],
  opts: { marker: string | RegExp; env?: Record<string, string>; timeoutMs?: number; quietStderr?: boolean },
): Promise<Child> {
  const proc = spawn(command, args, {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', opts.quietStderr ? 'ignore' : 'inherit'],
  })
  const lines: string[] = []
  let buf = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`${args.join(' ')} not ready in ${opts.timeoutMs ?? 60_000} ms`))
    }, opts.timeoutMs ?? 60_000)
    let done = false
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        lines.push(line)
        const m = typeof opts.marker === 'string' ? line.startsWith(opts.marker) : opts.marker.test(line)
        if (m && !done) {
          done = true
          clearTimeout(timer)
          const ready = typeof opts.marker === 'string' ? line.slice(opts.marker.length).trim() : line
          resolve({ proc, pid: proc.pid!, ready, lines, stop: (t) => stopChild(proc, t) })
        }
        nl = buf.indexOf('\n')
      }
    })
    proc.on('exit', (code) => {
      if (!done) {
        clearTimeout(timer)
        reject(new Error(`${args.join(' ')} exited with ${code} before ready`))
      }
    })
  })
}

function stopChild(proc: ChildProcess, timeoutMs = 30_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
    proc.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    proc.kill('SIGTERM')
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

/** Resident set size of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the full line (11 and 12 after the command).
  return (Number(fields[11]) + Number(fields[12])) / 100
}
