import type { AlertAckResponse, AlertItemsResponse } from '@tokenmeter/contract'
import { type AlertItem, get, send } from '$lib/api'
import { type DetailDim, detailHref } from '$lib/detail/links'
import { canSeeTeams, isAdmin, session } from '$lib/session.svelte'

/**
 * The anomaly detector's findings for the signed-in lead or admin, shared by
 * the alerts page, the dashboard banner and the key cards' badges. Loaded
 * once per page view (and after an acknowledgement), never polled.
 */
class AlertsState {
  items = $state<AlertItem[]>([])
  loaded = $state(false)
  error = $state('')

  get open(): AlertItem[] {
    return this.items.filter((a) => !a.acknowledgedAt)
  }

  openFor(keyId: string): AlertItem[] {
    return this.open.filter((a) => a.keyId === keyId)
  }

  async load() {
    if (!canSeeTeams(session.me)) return
    try {
      this.items = (await get<AlertItemsResponse>('/api/alerts', 'days=14&state=all')).alerts
      this.error = ''
    } catch (e) {
      this.error = (e as Error).message
    }
    this.loaded = true
  }

  async acknowledge(a: AlertItem) {
    const { alert } = await send<AlertAckResponse>('POST', `/api/alerts/${a.alertId}/ack`, {})
    this.items = this.items.map((x) => (x.alertId === alert.alertId ? alert : x))
  }
}

export const alerts = new AlertsState()

export const KIND_TITLE: Record<AlertItem['kind'], string> = {
  spike: 'Spike on a quiet key',
  runaway_day: 'Runaway day',
  forecast: 'Trending to its cap',
  threshold: 'Budget threshold reached',
}

const HOUR = 3_600_000
const DAY = 86_400_000

/** The window the finding is about: the hour, the day, or the budget period so far. */
export function alertWindow(a: AlertItem): { from: string; to: string } {
  const start = Date.parse(a.windowStart)
  const len = a.kind === 'spike' ? HOUR : a.kind === 'runaway_day' ? DAY : Math.max(DAY, Date.now() - start)
  return { from: new Date(start).toISOString(), to: new Date(start + len).toISOString() }
}

/** The request-log filter that shows what the alert is about. */
function subjectFilter(a: AlertItem): Record<string, string> {
  if (a.keyId) return { keys: a.keyId }
  if (a.budget?.scope === 'user') return { users: a.budget.scopeId }
  if (a.budget?.scope === 'team') return { teams: a.budget.scopeId }
  return {}
}

/** Evidence: the subject's spend around the window (a week of hours for a spike, four weeks of days otherwise). */
export function evidenceQuery(a: AlertItem): string {
  const w = alertWindow(a)
  const spike = a.kind === 'spike'
  const from = new Date(Date.parse(w.from) - (spike ? 2 * DAY : 27 * DAY)).toISOString()
  const to = new Date(Math.min(Date.parse(w.to) + (spike ? 6 * HOUR : DAY), Date.now() + HOUR)).toISOString()
  const p = new URLSearchParams({
    ...subjectFilter(a),
    from,
    to,
    granularity: spike ? '1h' : '1d',
    split: 'none',
  })
  return String(p)
}

export interface AlertAction {
  label: string
  href: string
  kind: 'primary' | 'normal'
  id: string
}

/** What each finding calls for (seeds 003/004): rotate a leaked key, raise a cap, read that day's requests. */
export function alertActions(a: AlertItem): AlertAction[] {
  const w = alertWindow(a)
  const out: AlertAction[] = []
  const admin = isAdmin(session.me)
  if (a.kind === 'spike' || a.kind === 'runaway_day') {
    const logHour = new URLSearchParams({ ...subjectFilter(a), logFrom: w.from, logTo: w.to })
    out.push({
      id: 'log',
      label: a.kind === 'spike' ? "Open that hour's request log" : "Open that day's request log",
      href: `/keys?${logHour}`,
      kind: 'primary',
    })
    if (a.keyId && admin)
      out.push({
        id: 'rotate',
        label: 'Rotate the key',
        href: `/admin/keys?key=${encodeURIComponent(a.keyId)}`,
        kind: 'normal',
      })
  } else {
    if (a.budget && admin)
      out.push({
        id: 'raise-cap',
        label: 'Raise the cap',
        href: `/admin/budgets?edit=${encodeURIComponent(a.budget.budgetId)}`,
        kind: 'primary',
      })
    const dim: DetailDim | null = a.keyId
      ? 'key'
      : a.budget?.scope === 'user'
        ? 'user'
        : a.budget?.scope === 'team'
          ? 'team'
          : null
    const id = a.keyId ?? a.budget?.scopeId
    if (dim && id)
      out.push({
        id: 'investigate',
        label: 'See who is consuming',
        href: detailHref(dim, id),
        kind: 'normal',
      })
  }
  if (a.keyId && a.kind !== 'forecast' && a.kind !== 'threshold')
    out.push({ id: 'open-key', label: 'Open the key', href: detailHref('key', a.keyId), kind: 'normal' })
  return out
}
