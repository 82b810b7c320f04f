// Numbers for people: compact where a glance is enough, exact in tooltips.

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 })
const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

/** 1234 -> "1.2K", 1_234_567 -> "1.2M"; below 10k the exact integer. */
export function fmtCount(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—'
  return Math.abs(n) < 10_000 ? integer.format(n) : compact.format(n)
}

export function fmtInt(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—'
  return integer.format(n)
}

/**
 * USD with the precision the amount needs: whole cents from $1, four
 * significant digits below a dollar so sub-cent spend ($0.0042) stays visible.
 */
export function fmtUsd(n: number | null | undefined, opts: { compact?: boolean } = {}): string {
  if (n == null || !Number.isFinite(n)) return '—'
  const abs = Math.abs(n)
  if (abs === 0) return '$0.00'
  if (opts.compact && abs >= 100_000) {
    return `$${compact.format(n)}`
  }
  if (abs >= 1) {
    return n.toLocaleString('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2 })
  }
  if (abs >= 0.01) {
    return n.toLocaleString('en-US', {
      style: 'currency',
      currency: 'USD',
      minimumFractionDigits: 2,
      maximumFractionDigits: 4,
    })
  }
  return n.toLocaleString('en-US', {
    style: 'currency',
    currency: 'USD',
    minimumSignificantDigits: 2,
    maximumSignificantDigits: 3,
  })
}

export function fmtPct(n: number | null | undefined, digits = 0): string {
  if (n == null || !Number.isFinite(n)) return '—'
  return `${n.toFixed(digits)}%`
}

export function fmtMs(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—'
  return n >= 1000 ? `${(n / 1000).toFixed(n >= 10_000 ? 0 : 1)} s` : `${Math.round(n)} ms`
}

/** Axis / tooltip labels for a bucket start, by granularity. */
export function fmtBucket(iso: string | Date, granularity: string, long = false): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso
  if (granularity === '1d') {
    return d.toLocaleDateString('en-US', {
      month: 'short',
      day: 'numeric',
      ...(long ? { weekday: 'short', year: 'numeric' } : {}),
    })
  }
  return d.toLocaleString('en-US', {
    ...(long ? { month: 'short', day: 'numeric' } : {}),
    hour: 'numeric',
    minute: '2-digit',
  })
}

export function fmtDateTime(iso: string): string {
  const d = new Date(iso)
  return d.toLocaleString('en-US', {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  })
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/)
  return ((parts[0]?.[0] ?? '') + (parts.length > 1 ? (parts.at(-1)?.[0] ?? '') : '')).toUpperCase() || '?'
}

/** The words for a usage-storage outage (a `storage_unavailable` 503), wherever it shows. */
export function storageMessage(e: { details?: Record<string, unknown> }): string {
  const n = Number(e.details?.buffered ?? 0)
  return `Usage storage is unreachable: ${fmtInt(n)} ${n === 1 ? 'request' : 'requests'} buffered, nothing lost; charts resume when it returns.`
}
