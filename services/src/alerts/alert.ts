import { createHash } from 'node:crypto'

/** What the detector can find; each kind is explained where it is detected (anomaly-detector.ts). */
export type AlertKind = 'spike' | 'forecast' | 'runaway_day' | 'threshold'

export interface Alert {
  /** Derived from (kind, subject, window, level): the same finding always has the same id. */
  alertId: string
  kind: AlertKind
  subjectType: 'key' | 'budget'
  subjectId: string
  /** ISO start of the hour, day or budget period the finding is about. */
  windowStart: string
  /** Threshold percentage for kind 'threshold', else 0. */
  level: number
  severity: 'info' | 'warning' | 'critical'
  message: string
  valueUsd: number
  baselineUsd: number
  details: Record<string, string | number | null>
  createdAt: string
  notifiedAt: string | null
  /** When a lead or admin said "seen, handled" (the dashboard stops badging it), and who. */
  acknowledgedAt: string | null
  acknowledgedBy: string | null
}

export type AlertCandidate = Omit<
  Alert,
  'alertId' | 'createdAt' | 'notifiedAt' | 'acknowledgedAt' | 'acknowledgedBy'
>

export function alertId(
  c: Pick<AlertCandidate, 'kind' | 'subjectType' | 'subjectId' | 'windowStart' | 'level'>,
) {
  const windowSecond = Math.floor(Date.parse(c.windowStart) / 1000)
  return createHash('sha256')
    .update(`${c.kind}\n${c.subjectType}\n${c.subjectId}\n${windowSecond}\n${c.level}`)
    .digest('hex')
    .slice(0, 32)
}
