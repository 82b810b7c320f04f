/** Nearest-rank percentile of an unsorted sample (copied and sorted here). */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) return Number.NaN
  const sorted = Float64Array.from(sample).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export function median(sample: readonly number[]): number {
  return percentile(sample, 50)
}

/** Fixed decimals, or '—' for a missing value. */
export function fmt(n: number | undefined, decimals = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '—'
  return n.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
}

export function ratio(a: number, b: number, decimals = 2): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—'
  return `${fmt(a / b, decimals)}x`
}

/** CPU milliseconds (user + system, every thread of this process) spent inside fn. */
export async function measure<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; wallMs: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const result = await fn()
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { result, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 }
}
