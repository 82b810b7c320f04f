import { execFileSync } from 'node:child_process'
import { cpus, freemem, loadavg, totalmem } from 'node:os'

export interface MachineInfo {
  cpuModel: string
  cores: number
  memGiB: number
  freeGiB: number
  load1: number
  load5: number
  node: string
  /** Processes using CPU besides this benchmark when it started (others share the machine). */
  busy: string[]
}

/** The machine and how busy it is, for the header of every results file. */
export function machineInfo(): MachineInfo {
  const [l1, l5] = loadavg()
  let busy: string[] = []
  try {
    const out = execFileSync('ps', ['-eo', 'pcpu,args', '--sort=-pcpu', '--no-headers'], { encoding: 'utf8' })
    busy = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && Number.parseFloat(l) >= 5)
      .map((l) => l.slice(0, 90))
      .slice(0, 8)
  } catch (err) {
    // The results still get a header; it says why the busy processes are missing.
    busy = [`(ps failed: ${(err as Error).message})`]
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    freeGiB: Math.round(freemem() / 2 ** 30),
    load1: l1 ?? 0,
    load5: l5 ?? 0,
    node: process.version,
    busy,
  }
}
