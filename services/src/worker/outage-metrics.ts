import { Gauge, type Registry } from 'prom-client'
import type { OpsStatus, OutageKit } from './outage-kit.ts'

/**
 * Spill, replay and quarantine metrics, read from one status snapshot at
 * scrape time (cached for a second: a scrape reads many gauges). The
 * `*_total` ones are monotonic since process start; rate() over
 * tokenmeter_replay_rows_total is the replay rate.
 */
export function registerOutageMetrics(registry: Registry, kit: OutageKit): void {
  let cached: { at: number; status: Promise<OpsStatus> } | undefined
  const snapshot = () => {
    if (!cached || Date.now() - cached.at > 1_000) {
      cached = { at: Date.now(), status: kit.status() }
      // The scrape awaiting this snapshot gets the error; here only the cache forgets it.
      cached.status.catch(() => {
        cached = undefined
      })
    }
    return cached.status
  }
  const gauge = (
    name: string,
    help: string,
    read: (s: OpsStatus, g: Gauge) => void,
    labelNames: string[] = [],
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        read(await snapshot(), this)
      },
    })
  gauge(
    'tokenmeter_spill_batches',
    'Batches waiting to be replayed, by store (redis, disk)',
    (s, g) => {
      const r = s.redis?.jobs
      g.set({ store: 'redis' }, r ? r.waiting + r.active + r.delayed : 0)
      g.set({ store: 'disk' }, s.disk.batches)
    },
    ['store'],
  )
  gauge(
    'tokenmeter_spill_bytes',
    'Bytes of spilled batches waiting, by store',
    (s, g) => {
      g.set({ store: 'redis' }, s.redis?.bytes ?? 0)
      g.set({ store: 'disk' }, s.disk.bytes)
    },
    ['store'],
  )
  gauge(
    'tokenmeter_spill_oldest_age_seconds',
    'Age of the oldest batch waiting, by store (0 when empty)',
    (s, g) => {
      g.set({ store: 'redis' }, s.redis?.oldestAgeSeconds ?? 0)
      g.set({ store: 'disk' }, s.disk.oldestAgeSeconds ?? 0)
    },
    ['store'],
  )
  gauge('tokenmeter_spill_redis_failed_jobs', 'Spill jobs in the BullMQ failed set (should be 0)', (s, g) =>
    g.set(s.redis?.jobs.failed ?? 0),
  )
  gauge(
    'tokenmeter_spill_redis_over_budget_total',
    'Spills sent to disk because Redis was over budget',
    (s, g) => g.set(s.redis?.overBudgetSpills ?? 0),
  )
  gauge('tokenmeter_spill_redis_unavailable_total', 'Spills sent to disk because Redis was down', (s, g) =>
    g.set(s.redis?.failedSpills ?? 0),
  )
  gauge('tokenmeter_spool_full', '1 while the disk spool refuses new batches (full or ENOSPC)', (s, g) =>
    g.set(s.disk.full ? 1 : 0),
  )
  gauge(
    'tokenmeter_spool_rejected_total',
    'Batches the disk spool refused (kept in memory by the recorder)',
    (s, g) => g.set(s.disk.rejected),
  )
  gauge('tokenmeter_replay_batches_total', 'Batches replayed into ClickHouse by this process', (s, g) =>
    g.set(s.replay.batches),
  )
  gauge(
    'tokenmeter_replay_inserts_total',
    'ClickHouse inserts that carried the replayed batches (runs of refused batches share one)',
    (s, g) => g.set(s.replay.inserts),
  )
  gauge('tokenmeter_replay_rows_total', 'Rows replayed into ClickHouse by this process', (s, g) =>
    g.set(s.replay.rows),
  )
  gauge('tokenmeter_replay_rows_per_second', 'Replay rate over the last 10 s', (s, g) =>
    g.set(s.replay.rowsPerSecond),
  )
  gauge(
    'tokenmeter_replay_corrupt_segments_total',
    'Damaged spool segments quarantined by this process',
    (s, g) => g.set(s.replay.corruptSegments),
  )
  gauge(
    'tokenmeter_journal_bytes',
    'Bytes of usage rows in the journal not yet acknowledged by ClickHouse or a spill store',
    (s, g) => g.set(s.journal?.bytes ?? 0),
  )
  gauge(
    'tokenmeter_journal_segments',
    'Journal segments not yet acknowledged (one per recorder batch)',
    (s, g) => g.set(s.journal?.segments ?? 0),
  )
  gauge(
    'tokenmeter_journal_oldest_unacked_age_seconds',
    'Age of the oldest journaled row not yet acknowledged (0 when none)',
    (s, g) => g.set(s.journal?.oldestAgeSeconds ?? 0),
  )
  gauge(
    'tokenmeter_journal_rejected_rows_total',
    'Rows the journal could not take (full or a write error): answered, held in memory only',
    (s, g) => g.set(s.journal?.rejectedRows ?? 0),
  )
  gauge(
    'tokenmeter_journal_recovery_segments',
    'Segments left by a previous run: found at start, and delivered so far',
    (s, g) => {
      g.set({ state: 'found' }, s.journal?.recovery.segmentsFound ?? 0)
      g.set({ state: 'done' }, s.journal?.recovery.segmentsDone ?? 0)
    },
    ['state'],
  )
  gauge(
    'tokenmeter_journal_recovery_rows_total',
    'Rows delivered from segments left by a previous run',
    (s, g) => g.set(s.journal?.recovery.rowsDone ?? 0),
  )
  gauge(
    'tokenmeter_journal_recovery_inserts_total',
    "ClickHouse inserts that carried the journal drainer's rows (runs of parked segments share one)",
    (s, g) => g.set(s.journal?.recovery.inserts ?? 0),
  )
  gauge(
    'tokenmeter_journal_compressed_segments',
    'Journal segments waiting for ClickHouse that are held compressed',
    (s, g) => g.set(s.journal?.compressedSegments ?? 0),
  )
  gauge(
    'tokenmeter_journal_compacted_segments_total',
    'Parked journal segments compressed while they waited, by this process',
    (s, g) => g.set(s.journal?.recovery.compaction.segments ?? 0),
  )
  gauge(
    'tokenmeter_journal_compacted_bytes_total',
    'Size of the parked segments compressed by this process, before (uncompressed) and after (compressed)',
    (s, g) => {
      g.set({ size: 'uncompressed' }, s.journal?.recovery.compaction.bytesBefore ?? 0)
      g.set({ size: 'compressed' }, s.journal?.recovery.compaction.bytesAfter ?? 0)
    },
    ['size'],
  )
  gauge(
    'tokenmeter_journal_corrupt_records_total',
    'Journal damage found at start: a torn last record (cut off) or a damaged record mid-segment (skipped)',
    (s, g) => {
      g.set({ kind: 'torn-tail' }, s.journal?.recovery.tornTails ?? 0)
      g.set({ kind: 'damaged' }, s.journal?.recovery.damagedRecords ?? 0)
    },
    ['kind'],
  )
  gauge('tokenmeter_quarantine_entries', 'Quarantined batches and segments waiting for an operator', (s, g) =>
    g.set(s.quarantine.entries),
  )
  gauge('tokenmeter_quarantine_rows', 'Rows in the quarantine', (s, g) => g.set(s.quarantine.rows))
  gauge(
    'tokenmeter_rows_dropped_total',
    'Rows that left the pipeline without reaching ClickHouse or the quarantine; must stay 0',
    (s, g) => g.set(s.rowsDropped),
  )
}
