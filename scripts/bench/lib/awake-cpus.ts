import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'

/**
 * Keeps every CPU from going idle, as the `idle=poll` kernel option would:
 * one busy loop per CPU at SCHED_IDLE, the lowest class, which any runnable
 * process preempts at once. Why: on a virtual machine an idle vCPU halts,
 * and waking it costs tens of microseconds more the longer it slept, so on a
 * lightly loaded VM a few microseconds of extra work in one process can show
 * up several times over in a client's latency (docs/BENCHMARKS.md, section 6).
 * Measuring with and without this separates a cost from that amplification.
 * Returns undefined where `chrt` or `taskset` (util-linux) are missing.
 */
export async function keepCpusAwake(): Promise<(() => Promise<void>) | undefined> {
  for (const tool of ['chrt', 'taskset'])
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return undefined
  const loops: ChildProcess[] = []
  for (let cpu = 0; cpu < availableParallelism(); cpu++) {
    loops.push(
      spawn('taskset', ['-c', String(cpu), 'chrt', '--idle', '0', process.execPath, '-e', 'for (;;);'], {
        stdio: 'ignore',
      }),
    )
  }
  return async () => {
    for (const loop of loops) {
      if (loop.exitCode !== null || loop.signalCode !== null) continue
      loop.kill('SIGKILL')
      await once(loop, 'exit')
    }
  }
}
