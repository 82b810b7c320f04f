import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'

export interface RedisProcess {
  url: string
  port: number
  stop(signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same port and directory (data survives if persistence is on). */
  restart(): Promise<void>
}

/** A real redis-server on a random port in a temporary directory, for one test file. */
export async function startRedis(extraArgs: string[] = []): Promise<RedisProcess> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-redis-'))
  let proc: ChildProcess | undefined

  async function launch() {
    proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('redis-server did not start in 10 s')), 10_000)
      proc!.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      proc!.on('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server exited with ${code}`))
      })
    })
  }
  await launch()

  async function stop(signal: NodeJS.Signals = 'SIGTERM') {
    const p = proc
    if (!p || p.exitCode !== null) return
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve())
      p.kill(signal)
    })
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    restart: launch,
    async [Symbol.asyncDispose]() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  } as RedisProcess
}
