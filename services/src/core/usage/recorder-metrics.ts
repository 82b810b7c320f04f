import { Gauge, type Registry } from 'prom-client'
import type { UsageRecorder } from './usage-recorder.ts'

/** Recorder counters, read at scrape time so the hot path only bumps plain numbers. */
export function registerRecorderMetrics(registry: Registry, recorder: UsageRecorder): void {
  const read = (pick: (s: ReturnType<UsageRecorder['stats']>) => number) =>
    function (this: Gauge) {
      this.set(pick(recorder.stats()))
    }
  new Gauge({
    name: 'tokenmeter_rows_recorded_total',
    help: 'Usage rows accepted by the recorder since start',
    registers: [registry],
    collect: read((s) => s.recorded),
  })
  new Gauge({
    name: 'tokenmeter_rows_inserted_total',
    help: 'Usage rows acknowledged by ClickHouse since start (live path)',
    registers: [registry],
    collect: read((s) => s.inserted),
  })
  new Gauge({
    name: 'tokenmeter_rows_spilled_total',
    help: 'Usage rows handed to the spill path since start',
    registers: [registry],
    collect: read((s) => s.spilled),
  })
  new Gauge({
    name: 'tokenmeter_recorder_pending_rows',
    help: 'Rows accepted but not yet inserted or spilled',
    registers: [registry],
    collect: read((s) => s.pendingRows),
  })
  new Gauge({
    name: 'tokenmeter_recorder_failed_flushes_total',
    help: 'Batch inserts that failed since start',
    registers: [registry],
    collect: read((s) => s.failedFlushes),
  })
}
