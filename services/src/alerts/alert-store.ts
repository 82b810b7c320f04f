import type { Warehouse } from '../core/storage/warehouse.ts'
import { toClickHouseTime } from '../core/usage/usage-row.ts'
import { type Alert, type AlertCandidate, type AlertKind, alertId } from './alert.ts'

export interface AlertStore {
  /** Stores a finding unless the same (kind, subject, window, level) is already stored; the stored alert if new. */
  insertIfNew(candidate: AlertCandidate, now?: number): Promise<Alert | undefined>
  markNotified(alert: Alert, at?: number): Promise<void>
  /** Records that `by` (a user id, or 'admin-token') acknowledged the alert; the acknowledged version. */
  acknowledge(alert: Alert, by: string, at?: number): Promise<Alert>
  get(alertId: string): Promise<Alert | undefined>
  list(opts?: { since?: Date; kinds?: AlertKind[]; subjectIds?: string[]; limit?: number }): Promise<Alert[]>
  /** Stored but not yet delivered to the webhooks, newest first (bounded so a long outage cannot flood). */
  undelivered(since: Date): Promise<Alert[]>
}

type Row = Record<string, string | number | null>
const iso = (v: unknown) => (v ? new Date(`${String(v).replace(' ', 'T')}Z`).toISOString() : null)
const sec = (isoTime: string) => toClickHouseTime(Date.parse(isoTime)).slice(0, 19)

/**
 * The acknowledgement rides in the details JSON under `_ack` rather than in
 * columns of its own: a new version of the row (ReplacingMergeTree on
 * updated_at) carries it, and no schema change was needed while migration
 * numbers 0007-0008 are taken by other work in flight.
 */
const ACK = '_ack'

function fromRow(r: Row): Alert {
  const details = JSON.parse(String(r.details || '{}')) as Record<string, unknown>
  const ack = details[ACK] as { at?: string; by?: string } | undefined
  delete details[ACK]
  return {
    alertId: String(r.alert_id),
    kind: r.kind as AlertKind,
    subjectType: r.subject_type as Alert['subjectType'],
    subjectId: String(r.subject_id),
    windowStart: iso(r.window_start)!,
    level: Number(r.level),
    severity: r.severity as Alert['severity'],
    message: String(r.message),
    valueUsd: Number(r.value_usd),
    baselineUsd: Number(r.baseline_usd),
    details: details as Alert['details'],
    createdAt: iso(r.created_at)!,
    notifiedAt: iso(r.notified_at),
    acknowledgedAt: ack?.at ?? null,
    acknowledgedBy: ack?.by ?? null,
  }
}

function toRow(a: Alert, updatedAt: number) {
  return {
    alert_id: a.alertId,
    kind: a.kind,
    subject_type: a.subjectType,
    subject_id: a.subjectId,
    window_start: sec(a.windowStart),
    level: a.level,
    severity: a.severity,
    message: a.message,
    value_usd: a.valueUsd.toFixed(9),
    baseline_usd: a.baselineUsd.toFixed(9),
    details: JSON.stringify(
      a.acknowledgedAt ? { ...a.details, [ACK]: { at: a.acknowledgedAt, by: a.acknowledgedBy } } : a.details,
    ),
    created_at: toClickHouseTime(Date.parse(a.createdAt)),
    notified_at: a.notifiedAt ? toClickHouseTime(Date.parse(a.notifiedAt)) : null,
    updated_at: toClickHouseTime(updatedAt),
  }
}

export function createAlertStore(wh: Warehouse): AlertStore {
  return {
    async insertIfNew(candidate, now = Date.now()) {
      const id = alertId(candidate)
      const [seen] = await wh.query<{ n: string }>(
        'SELECT count() AS n FROM alerts WHERE alert_id = {id:String}',
        {
          id,
        },
      )
      if (Number(seen?.n ?? 0) > 0) return undefined
      const alert: Alert = {
        ...candidate,
        alertId: id,
        createdAt: new Date(now).toISOString(),
        notifiedAt: null,
        acknowledgedAt: null,
        acknowledgedBy: null,
      }
      // The id as dedup token: an instance racing us with the same finding inserts nothing.
      await wh.insertRows('alerts', [toRow(alert, now)], { dedupToken: `a${id}` })
      return alert
    },
    async markNotified(alert, at = Date.now()) {
      const notified = { ...alert, notifiedAt: new Date(at).toISOString() }
      await wh.insertRows('alerts', [toRow(notified, at)], { dedupToken: `n${alert.alertId}` })
    },
    async acknowledge(alert, by, at = Date.now()) {
      const acked: Alert = { ...alert, acknowledgedAt: new Date(at).toISOString(), acknowledgedBy: by }
      // A second acknowledgement is only a newer version of the same row: harmless.
      await wh.insertRows('alerts', [toRow(acked, at)])
      return acked
    },
    async get(alertId) {
      const [row] = await wh.query<Row>('SELECT * FROM alerts FINAL WHERE alert_id = {id:String} LIMIT 1', {
        id: alertId,
      })
      return row ? fromRow(row) : undefined
    },
    async list({ since, kinds, subjectIds, limit = 200 } = {}) {
      const rows = await wh.query<Row>(
        `SELECT * FROM alerts FINAL
         WHERE created_at >= {since:DateTime64(3, 'UTC')}
           AND (length({kinds:Array(String)}) = 0 OR has({kinds:Array(String)}, kind))
           AND (length({subjects:Array(String)}) = 0 OR has({subjects:Array(String)}, subject_id))
         ORDER BY created_at DESC, alert_id
         LIMIT {limit:UInt32}`,
        {
          since: toClickHouseTime(since?.getTime() ?? 0),
          kinds: kinds ?? [],
          subjects: subjectIds ?? [],
          limit,
        },
      )
      return rows.map(fromRow)
    },
    async undelivered(since) {
      const rows = await wh.query<Row>(
        `SELECT * FROM alerts FINAL WHERE notified_at IS NULL AND created_at >= {since:DateTime64(3, 'UTC')}
         ORDER BY created_at DESC LIMIT 1000`,
        { since: toClickHouseTime(since.getTime()) },
      )
      return rows.map(fromRow)
    },
  }
}
