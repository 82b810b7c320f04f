import { createHash } from 'node:crypto'
import type { Alert } from '@tokenmeter/contract'

// An alert's shape is part of the API (packages/contract/src/alerts-api.schema.ts).
export type { Alert, AlertKind } from '@tokenmeter/contract'

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
