import { mkdirSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HEADER_BYTES, scanSegment } from '../services/src/core/storage/record-framing.ts'
import { createUsageJournal } from '../services/src/core/usage/usage-journal.ts'
import type { UsageRow } from '../services/src/core/usage/usage-row.ts'
import { createFakeUpstream, type FakeUpstream } from '../services/src/simulator/fake-upstream.ts'
import { readJournalSegment } from '../services/src/worker/journal-segment-reader.ts'
import { expectExactlyOnce, makeUsageRow, waitFor } from './helpers/clickhouse-http-checks.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'

/**
 * The journal's damage handling and delivery at start, on the real embedded
 * engine: a data directory is prepared as a crash would leave it (a torn
 * last record, a flipped byte mid-segment, a batch cut and inserted but not
 * acknowledged), then the product starts on it. Plus the gateway's ordering:
 * a row is journaled before the client gets the end of its answer.
 */
const quiet = pino({ enabled: false })
let dataDir: string
let stack: TestStack
let fake: FakeUpstream
const expected = new Set<string>()
let n = 0

/**
 * Writes `count` rows to a fresh segment the way a process that then died
 * would, each answered on its own (one write, so one record, per row); returns rows and path.
 */
async function deadSegment(dir: string, count: number, cut: boolean) {
  const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
  const rows: UsageRow[] = []
  for (let i = 0; i < count; i++) {
    const row = makeUsageRow(n++)
    rows.push(row)
    journal.append(row)
    await journal.durable()
  }
  const before = new Set(readdirSync(dir))
  const c = cut ? journal.cut() : undefined
  return { rows, token: c?.token, done: Promise.all([c?.synced, journal.close()]), before }
}

const newest = (dir: string) => readdirSync(dir).sort().at(-1)!

const metric = async (name: string, labels = '') => {
  const text = await stack.core.metrics.metrics()
  const re = new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm')
  return Number(re.exec(text)?.[1])
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-'))
  const dir = join(dataDir, 'journal')
  mkdirSync(dir, { recursive: true })

  // A: the process died in the middle of writing its last row (torn tail).
  const a = await deadSegment(dir, 5, false)
  await a.done
  const aPath = join(dir, newest(dir))
  truncateSync(aPath, readFileSync(aPath).length - 7)
  for (const r of a.rows.slice(0, 4)) expected.add(r.request_id)

  // B: a byte flipped in the third record; the records around it are intact.
  const b = await deadSegment(dir, 5, false)
  await b.done
  const bPath = join(dir, newest(dir))
  const buf = readFileSync(bPath)
  const third = scanSegment(buf).records[2]!
  const at = third.offset + HEADER_BYTES + 20
  buf[at] = (buf[at] ?? 0) ^ 0xff
  writeFileSync(bPath, buf)
  for (const [i, r] of b.rows.entries()) if (i !== 2) expected.add(r.request_id)

  // C: cut (its insert was sent), never acknowledged.
  const c = await deadSegment(dir, 5, true)
  await c.done
  for (const r of c.rows) expected.add(r.request_id)

  fake = await createFakeUpstream({ slowChunkMs: 5 })
  stack = await startTestStack({
    dataDir,
    listen: true,
    env: { OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEY: 'sk-up', RECORDER_FLUSH_MS: '100' },
  })
})
afterAll(async () => {
  await stack?.close()
  await fake?.close()
})

describe('journal segments', () => {
  it('with JOURNAL_FSYNC_MS=0 makes the answer wait for an fdatasync; otherwise nothing to wait for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-unit-'))
    const perAnswer = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 0, logger: quiet })
    expect(perAnswer.durable()).toBeUndefined()
    perAnswer.append(makeUsageRow(n++))
    const wait = perAnswer.durable()
    expect(wait).toBeInstanceOf(Promise)
    await wait
    // Synced: nothing left to wait for until the next row.
    expect(perAnswer.durable()).toBeUndefined()
    await perAnswer.close()
  })

  it('writes the rows of one turn of the event loop together, before the answers waiting for them go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-unit-'))
    const grouped = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
    const rows = [makeUsageRow(n++), makeUsageRow(n++), makeUsageRow(n++)]
    for (const r of rows) grouped.append(r)
    const segment = join(dir, readdirSync(dir)[0]!)
    const id = readdirSync(dir)[0]!.slice(0, -4)
    // Taken, not yet written.
    expect(readFileSync(segment).length).toBe(0)
    // The first answer to end in this turn: the rows so far are written at once, one
    // record and one write for the three; nothing to wait for (no fsync per answer).
    expect(grouped.durable()).toBeUndefined()
    expect(scanSegment(readFileSync(segment)).records).toHaveLength(1)
    expect(readJournalSegment(segment, id).rows.map((r) => r.request_id)).toEqual(
      rows.map((r) => r.request_id),
    )
    // Answers ending later in the same turn (a busy gateway) wait for one write at its end.
    const later = [makeUsageRow(n++), makeUsageRow(n++)]
    grouped.append(later[0]!)
    const first = grouped.durable()
    grouped.append(later[1]!)
    const second = grouped.durable()
    expect(first).toBeInstanceOf(Promise)
    expect(second).toBeInstanceOf(Promise)
    expect(scanSegment(readFileSync(segment)).records).toHaveLength(1)
    await Promise.all([first, second])
    expect(scanSegment(readFileSync(segment)).records).toHaveLength(2)
    rows.push(...later)
    expect(grouped.durable()).toBeUndefined()
    // A cut writes what is pending first, so the batch's segment holds all its rows.
    const last = makeUsageRow(n++)
    grouped.append(last)
    const cut = grouped.cut()!
    expect(cut.token).toBe(`j-${id}`)
    expect(cut.complete).toBe(true)
    expect(scanSegment(readFileSync(segment)).records).toHaveLength(4)
    // The insert sends the journal's bytes (JSONCompactEachRow): each row serialised once.
    expect(cut.encoded!.columns).toEqual(Object.keys(last))
    const lines = cut.encoded!.body.toString().trim().split('\n')
    expect(lines.map((l) => JSON.parse(l)[0])).toEqual([...rows, last].map((r) => r.request_id))
    expect(lines.map((l) => JSON.parse(l)[cut.encoded!.columns.indexOf('batch_id')])).toEqual(
      Array(6).fill(cut.token),
    )
    await grouped.close()
  })

  it('refuses rows past JOURNAL_MAX_BYTES and deletes a segment once its batch is acknowledged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-unit-'))
    const j = createUsageJournal({ dir, maxBytes: 2_000, fsyncMs: 200, logger: quiet })
    let taken = 0
    for (let i = 0; i < 10; i++) if (j.append(makeUsageRow(n++))) taken++
    expect(taken).toBeGreaterThan(0)
    expect(taken).toBeLessThan(10)
    expect(j.status().rejectedRows).toBe(10 - taken)
    const cut = j.cut()!
    await cut.synced
    expect(readdirSync(dir)).toHaveLength(1)
    j.ack(cut.token)
    expect(readdirSync(dir)).toEqual([])
    expect(j.status()).toMatchObject({ bytes: 0, segments: 0 })
    await j.close()
  })

  it('cuts a torn tail off at the last good record, the token the same as the lost cut', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-journal-unit-'))
    const torn = await deadSegment(dir, 3, true)
    await torn.done
    const path = join(dir, newest(dir))
    const full = readFileSync(path).length
    truncateSync(path, full - 3)
    const read = readJournalSegment(path, newest(dir).slice(0, -4))
    // The cut record was the torn one: the token is derived from the rows, as the cut's was.
    expect(read.token).toBe(torn.token)
    expect(read.rows.map((r) => r.request_id)).toEqual(torn.rows.map((r) => r.request_id))
    expect(read.truncatedAt).toBeGreaterThan(0)
    expect(readFileSync(path).length).toBe(read.truncatedAt)
    expect(read.rows.every((r) => r.batch_id === torn.token)).toBe(true)
  })
})

describe('journal left by a crash, delivered at start', () => {
  it('delivers every good row once, reports the torn tail and the damaged record, quarantines the damaged segment', async () => {
    await stack.core.journal!.recovery.done()
    await stack.core.recorder.flush()
    await expectExactlyOnce(stack.core.warehouse, expected)
    const p = stack.core.journal!.recovery.progress()
    expect(p).toMatchObject({ state: 'done', segmentsFound: 3, segmentsDone: 3, rowsDone: 13 })
    expect(p.tornTails).toBe(1)
    expect(p.damagedRecords).toBe(1)
    expect(await metric('tokenmeter_journal_corrupt_records_total', '{kind="torn-tail"}')).toBe(1)
    expect(await metric('tokenmeter_journal_corrupt_records_total', '{kind="damaged"}')).toBe(1)
    expect(await metric('tokenmeter_journal_recovery_segments', '{state="done"}')).toBe(3)
    expect(await metric('tokenmeter_journal_recovery_rows_total')).toBe(13)

    const res = await stack.app.inject({
      url: '/api/admin/ops/quarantine',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    })
    const entry = res.json().entries.find((e: { id: string }) => e.id.startsWith('journal-'))
    expect(entry.reason).toMatch(/bad-crc/)
    expect(entry.reason).toMatch(/4 good rows delivered/)
    // Delivered segments are gone; the damaged one moved to the quarantine.
    expect(
      readdirSync(join(dataDir, 'journal')).filter(
        (f) => /\.jnlz?$/.test(f) && !f.includes(`-${process.pid}-`),
      ),
    ).toEqual([])
  })

  it('re-delivers a batch whose insert landed before the crash under the same token: counted once', async () => {
    // The start's own recovery of the segments left in beforeAll is over: this one finds only its own.
    await stack.core.journal!.recovery.done()
    const dir = join(dataDir, 'journal')
    const d = await deadSegment(dir, 6, true)
    await d.done
    // The insert of the cut batch reached ClickHouse; the process died before deleting the segment.
    const rows = d.rows.map((r) => ({ ...r, batch_id: d.token! }))
    await stack.core.outage.insertBatch(
      { batchId: d.token!, createdAt: Date.now(), rows },
      { rowsChecked: false },
    )
    for (const r of d.rows) expected.add(r.request_id)
    // The segment is a dead writer's now (its journal closed): the running drainer takes it.
    const recovery = stack.core.journal!.recovery
    const before = recovery.progress()
    recovery.wake()
    await waitFor('the drainer to deliver the segment', async () => {
      const p = recovery.progress()
      return p.segmentsDone === before.segmentsDone + 1 && p.state === 'done'
    })
    expect(recovery.progress().rowsDone - before.rowsDone).toBe(6)
    await expectExactlyOnce(stack.core.warehouse, expected)
  })
})

describe('gateway: the row is journaled before the end of the answer', () => {
  it('holds a JSON body whole and a stream from its final event until the row is recorded', async () => {
    const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }
    const admin = async (method: 'POST' | 'PUT', url: string, payload: object) => {
      const r = await stack.app.inject({ method, url, headers: auth, payload })
      expect(r.statusCode, r.body).toBeLessThan(300)
      return r.json()
    }
    await admin('POST', '/api/admin/teams', { teamId: 'jt', name: 'Journal' })
    await admin('POST', '/api/admin/users', {
      userId: 'ju',
      email: 'j@example.com',
      name: 'J',
      teamId: 'jt',
      role: 'member',
    })
    await admin('PUT', '/api/admin/models/gpt-j', {
      provider: 'openai',
      upstreamModel: 'gpt-4o-mini@slow',
      inputPerM: 1,
      outputPerM: 2,
    })
    const key = (await admin('POST', '/api/admin/keys', { userId: 'ju', name: 'k' })).plaintext

    // Order of what the gateway does, across the process: writes, ends, and the recording of rows.
    const events: string[] = []
    const proto = ServerResponse.prototype
    const { write, end } = proto
    // Only the gateway's answers (the fake provider answers in this process too).
    const ours = (res: ServerResponse) => res.req?.headers.authorization === `Bearer ${key}`
    // The row of the answer being sent, and whether it is in a journal file when its end goes out.
    let recordedId = ''
    const inJournal = () =>
      readdirSync(join(dataDir, 'journal')).some(
        (f) => f.includes('.jnl') && readFileSync(join(dataDir, 'journal', f)).includes(recordedId),
      )
    proto.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      if (ours(this)) {
        const final = String(chunk).includes('[DONE]')
        events.push(final ? 'write-final' : 'write')
        if (recordedId && inJournal()) events.push('row-in-journal')
      }
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
    } as typeof proto.write
    proto.end = function (this: ServerResponse, ...args: unknown[]) {
      if (ours(this)) events.push('end')
      return (end as (...a: unknown[]) => ServerResponse).apply(this, args)
    } as typeof proto.end
    const recorder = stack.core.recorder
    const recordDurably = recorder.recordDurably
    recorder.recordDurably = (row) => {
      events.push('record')
      recordedId = row.request_id
      return recordDurably(row)
    }
    try {
      const holds = async () =>
        Number(
          /^tokenmeter_journal_answer_hold_seconds_count (\d+)$/m.exec(
            await stack.core.metrics.metrics(),
          )?.[1] ?? 0,
        )
      const heldBefore = await holds()
      const call = async (stream: boolean) => {
        events.length = 0
        recordedId = ''
        const res = await fetch(`${stack.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({
            model: 'gpt-j',
            stream,
            messages: [{ role: 'user', content: 'hello there' }],
          }),
        })
        expect(res.status).toBe(200)
        await res.text()
        return [...events]
      }
      const json = await call(false)
      expect(json.indexOf('record')).toBeGreaterThanOrEqual(0)
      // The body's first bytes went out with the row already in the journal's file.
      expect(json[json.indexOf('write') + 1]).toBe('row-in-journal')
      expect(json.indexOf('record')).toBeLessThan(json.indexOf('write'))
      expect(json.indexOf('record')).toBeLessThan(json.indexOf('end'))
      const sse = await call(true)
      // Earlier events were streamed as they came; the final one waited for the row.
      expect(sse.indexOf('write')).toBeLessThan(sse.indexOf('record'))
      expect(sse.indexOf('record')).toBeLessThan(sse.indexOf('write-final'))
      expect(sse.indexOf('record')).toBeLessThan(sse.lastIndexOf('end'))
      expect(sse[sse.indexOf('write-final') + 1]).toBe('row-in-journal')
      // Both holds were measured (tokenmeter_journal_answer_hold_seconds).
      expect(await holds()).toBe(heldBefore + 2)
    } finally {
      proto.write = write
      proto.end = end
      recorder.recordDurably = recordDurably
    }
  })
})
