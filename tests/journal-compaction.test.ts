import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HEADER_BYTES, scanSegment } from '../services/src/core/storage/record-framing.ts'
import {
  createUsageJournal,
  drainableSegments,
  segmentIdOf,
  type UsageJournal,
} from '../services/src/core/usage/usage-journal.ts'
import { createJournalCompactor } from '../services/src/worker/journal-compaction.ts'
import { intentFile, startJournalRecovery } from '../services/src/worker/journal-recovery.ts'
import { readPackedHeader } from '../services/src/worker/packed-segment.ts'
import { groupToken } from '../services/src/worker/replay-groups.ts'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { makeUsageRow, waitFor } from './helpers/clickhouse-http-checks.ts'
import {
  expectEveryRowOnce as expectEveryRowOnceIn,
  inJournalDataDir,
  intentsIn,
  parkBatch,
  parkBatchInWrites,
  segmentsIn,
} from './helpers/journal-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { seededRandom } from './helpers/test-seed.ts'

/**
 * Parked journal segments compressed while they wait for ClickHouse
 * (worker/journal-compaction.ts, format worker/packed-segment.ts), on the
 * real engine behind the test HTTP endpoint (so an outage is a refused
 * connection and inserts are counted):
 * - an outage's parked batches are compressed, the journal's bound counts
 *   the compressed bytes, and every row lands once when ClickHouse is back;
 * - a crash between writing a compressed copy and deleting the original
 *   (both files there) delivers the segment once;
 * - a damaged compressed segment: its intact chunks delivered, reported,
 *   quarantined, the other segments delivered, no loop;
 * - recorded groups with compressed members are redone exactly as recorded.
 * Each ends with every row once in the raw table and every rollup equal to it.
 */
const quiet = pino({ enabled: false })
let ch: ClickHouseHttp
let stack: TestStack
const accepted = new Set<string>()
let n = 0
const { seed, random } = seededRandom('journal-compaction damage')

beforeAll(async () => {
  ch = await startClickHouseHttp()
  stack = await startTestStack({
    env: {
      CLICKHOUSE_URL: ch.url,
      CLICKHOUSE_INSERT_TIMEOUT_MS: '2000',
      // Batches are cut by the test's flushes (200 rows each); a merged insert carries one.
      RECORDER_MAX_ROWS: '200',
      RECORDER_FLUSH_MS: '60000',
    },
    roles: ['api'],
  })
})
afterAll(async () => {
  await stack?.close()
  await ch?.close()
})

const expectEveryRowOnce = () => expectEveryRowOnceIn(stack.core.warehouse, accepted)

const compressedIn = (dir: string) => segmentsIn(dir).filter((f) => f.endsWith('.jnlz'))
const fileOf = (dir: string, token: string) => segmentsIn(dir).find((f) => f.startsWith(segmentIdOf(token)!))!

const metric = async (name: string, labels = '') => {
  const text = await stack.core.metrics.metrics()
  const re = new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm')
  return Number(re.exec(text)?.[1])
}

const rowSource = { accepted, nextRow: () => makeUsageRow(n++) }
const parkedBatch = (journal: UsageJournal, rows: number, opts: { mergeable: boolean }) =>
  parkBatch(journal, rows, opts, rowSource)
const parkedInWrites = (
  journal: UsageJournal,
  rows: number,
  opts: { mergeable: boolean; perWrite: number },
) => parkBatchInWrites(journal, rows, opts, rowSource)

/** Compresses every parked segment of a journal not in `except`, as the drainer does while it waits. */
async function compactAll(journal: UsageJournal, except: string[] = []) {
  const busy = new Set(except.map((t) => segmentIdOf(t)!))
  const compactor = createJournalCompactor({
    journal,
    logger: quiet,
    busy: (id) => busy.has(id),
    stopped: () => false,
  })
  await compactor.tick()
  return compactor.stats()
}

function drainer(dir: string, maxGroupRows = 1_000) {
  return startJournalRecovery({
    journal: createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet }),
    insertBatch: stack.core.outage.insertBatch,
    quarantine: stack.core.outage.quarantine,
    logger: quiet,
    maxGroupRows,
    pollMs: 20,
  })
}

describe('an outage held in the journal, compressed while it waits', () => {
  it('compresses the parked batches, counts their compressed bytes against the bound, delivers every row once', async () => {
    const BATCHES = 60
    const ROWS = 200
    const { journal, recovery } = stack.core.journal!
    const dir = journal.dir
    await ch.stop()
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < ROWS; i++) {
        const row = makeUsageRow(n++)
        stack.core.recorder.record(row)
        accepted.add(row.request_id)
      }
      await stack.core.recorder.flush()
    }
    expect(stack.core.recorder.stats()).toMatchObject({ parked: BATCHES * ROWS, pendingRows: 0 })
    // The drainer read the oldest one or two for its insert (it retries them) and compresses the rest.
    await waitFor(
      'the parked batches to be compressed',
      async () => compressedIn(dir).length >= BATCHES - 2,
      60_000,
    )
    const plain = segmentsIn(dir).filter((f) => f.endsWith('.jnl'))
    // Compaction runs while the drainer retries an insert: the segments of that insert stay as they are.
    expect(plain.length).toBeGreaterThanOrEqual(1)
    expect(plain.length).toBeLessThanOrEqual(2)
    // Those it holds are the oldest: the others were compressed under it, not them.
    expect(plain).toEqual(segmentsIn(dir).sort().slice(0, plain.length))

    // Uncompressed, the same segments took (their headers say, or their size while plain):
    let uncompressed = 0
    let onDisk = 0
    for (const f of segmentsIn(dir)) {
      const file = readFileSync(join(dir, f))
      onDisk += file.length
      uncompressed += f.endsWith('.jnlz') ? readPackedHeader(file)!.bytes : file.length
    }
    const rows = BATCHES * ROWS
    console.log(
      `outage: ${rows} rows parked in ${BATCHES} segments: ${uncompressed} bytes as JSON lines ` +
        `(${(uncompressed / rows).toFixed(1)} bytes/row), ${onDisk} compressed ` +
        `(${(onDisk / rows).toFixed(1)} bytes/row, x${(uncompressed / onDisk).toFixed(1)})`,
    )
    expect(onDisk).toBeLessThan(uncompressed / 4)
    // The bound (JOURNAL_MAX_BYTES) counts what is on disk.
    const status = journal.status()
    expect(status.bytes).toBe(onDisk)
    expect(status.compressedSegments).toBe(compressedIn(dir).length)
    const c = recovery.progress().compaction
    expect(c.segments).toBe(compressedIn(dir).length)
    expect(c.bytesBefore / c.bytesAfter).toBeGreaterThan(4)
    expect(await metric('tokenmeter_journal_compressed_segments')).toBe(compressedIn(dir).length)
    expect(await metric('tokenmeter_journal_compacted_bytes_total', '{size="uncompressed"}')).toBe(
      c.bytesBefore,
    )
    expect(await metric('tokenmeter_journal_compacted_bytes_total', '{size="compressed"}')).toBe(c.bytesAfter)
    // Ops see them as before: listed with their rows, inspected whole, and the status' new fields.
    const listed = (await stack.core.outage.listBatches(1_000)).filter((b) => b.store === 'journal')
    expect(listed).toHaveLength(BATCHES)
    expect(listed.filter((b) => b.rows !== ROWS)).toEqual([])
    const packed = listed.find((b) => b.location.endsWith('.jnlz'))!
    expect((await stack.core.outage.inspect(packed.batchId))?.rowsData).toHaveLength(ROWS)
    const body = (
      await stack.app.inject({
        url: '/api/admin/ops/status',
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      })
    ).json()
    expect(body.journal.compressedSegments).toBe(status.compressedSegments)
    expect(body.journal.recovery.compaction).toEqual(c)

    const insertsBefore = recovery.progress().inserts
    await ch.start()
    await waitFor(
      'the journal to drain',
      async () => segmentsIn(dir).length === 0 && recovery.progress().state === 'done',
      120_000,
    )
    expect(journal.status()).toMatchObject({ bytes: 0, compressedSegments: 0 })
    expect(recovery.progress().inserts).toBeGreaterThan(insertsBefore)
    // /metrics reads a status snapshot cached for a second.
    await waitFor(
      "the drainer's inserts in /metrics",
      async () => (await metric('tokenmeter_journal_recovery_inserts_total')) === recovery.progress().inserts,
    )
    await expectEveryRowOnce()
  }, 180_000)
})

describe('a crash between writing a compressed copy and deleting the original', () => {
  it('delivers each segment left twice once: the compressed copy when whole, else the original', async () => {
    await inJournalDataDir('twice', async ({ dir }) => {
      const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
      const b = []
      for (let i = 0; i < 6; i++) b.push(await parkedInWrites(journal, 20, { mergeable: true, perWrite: 5 }))
      const held = await parkedInWrites(journal, 20, { mergeable: false, perWrite: 5 })
      const twice = [b[1]!, b[3]!, b[4]!, held]
      const originals = new Map(twice.map((t) => [t.token, readFileSync(join(dir, fileOf(dir, t.token)))]))
      const stats = await compactAll(journal)
      expect(stats.segments).toBe(7)
      await journal.close()
      // The crash: the compressed copies were renamed into place, the originals not deleted yet.
      for (const t of twice) {
        const name = fileOf(dir, t.token).replace(/z$/, '')
        writeFileSync(join(dir, name), originals.get(t.token)!)
      }
      // b4's compressed copy was damaged on disk besides: its original is the whole one.
      const b4 = join(dir, `${fileOf(dir, b[4]!.token).replace(/z$/, '')}z`)
      const packed = readFileSync(b4)
      const chunk = scanSegment(packed).records[1]!
      packed[chunk.offset + HEADER_BYTES + 3] = (packed[chunk.offset + HEADER_BYTES + 3] ?? 0) ^ 0x5a
      writeFileSync(b4, packed)
      expect(segmentsIn(dir)).toHaveLength(11)
      // Listed once each, so nothing can be grouped twice.
      const listed = drainableSegments(dir)
      expect(listed).toHaveLength(7)
      expect(listed.filter((s) => s.leftover !== undefined)).toHaveLength(4)

      const before = ch.stats.usageInserts
      const d = drainer(dir)
      await d.done()
      await d.stop()
      expect(segmentsIn(dir)).toEqual([])
      expect(intentsIn(dir)).toEqual([])
      // b0..b5 in one merged insert, the held one alone.
      expect(ch.stats.usageInserts - before).toBe(2)
      expect(d.progress()).toMatchObject({ segmentsDone: 7, rowsDone: 140, damagedRecords: 0 })
      await expectEveryRowOnce()
    })
  })
})

describe('a damaged compressed segment', () => {
  it('delivers its intact chunks and every other segment, quarantines it with the damage reported, and does not loop', async () => {
    await inJournalDataDir('packed-damage', async ({ dir }) => {
      const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
      const first = parkedBatch(journal, 10, { mergeable: true })
      // About 3 chunks of 128 KiB: 1,200 rows written 10 at a time.
      const big = await parkedInWrites(journal, 1_200, { mergeable: true, perWrite: 10 })
      const ruined = await parkedInWrites(journal, 30, { mergeable: true, perWrite: 10 })
      const last = parkedBatch(journal, 10, { mergeable: false })
      await compactAll(journal)
      await journal.close()
      expect(compressedIn(dir)).toHaveLength(4)

      // A flipped byte in a chunk of the big one (seeded: which chunk, which byte).
      const bigPath = join(dir, fileOf(dir, big.token))
      const bigFile = readFileSync(bigPath)
      const chunks = scanSegment(bigFile).records.slice(1)
      expect(chunks.length).toBeGreaterThanOrEqual(3)
      const hit = chunks[1 + Math.floor(random() * (chunks.length - 1))]!
      const at = hit.offset + HEADER_BYTES + Math.floor(random() * (hit.end - hit.offset - HEADER_BYTES))
      bigFile[at] = (bigFile[at] ?? 0) ^ 0xff
      writeFileSync(bigPath, bigFile)
      // The other one is not a compressed segment at all any more: nothing in it can be read.
      const ruinedPath = join(dir, fileOf(dir, ruined.token))
      const ruinedBytes = Buffer.from(
        Array.from({ length: statSync(ruinedPath).size }, () => Math.floor(random() * 256)),
      )
      writeFileSync(ruinedPath, ruinedBytes)
      for (const r of ruined.rows) accepted.delete(r.request_id)

      const d = drainer(dir)
      await d.done()
      const found = d.progress()
      // What the drainer saw: which of the big batch's rows landed.
      const landed = new Set(
        (
          await stack.core.warehouse.query<{ id: string }>(
            `SELECT toString(request_id) AS id FROM requests WHERE batch_id = {b:String}`,
            { b: big.token },
          )
        ).map((r) => r.id),
      )
      const lost = big.rows.map((r, i) => (landed.has(r.request_id) ? -1 : i)).filter((i) => i >= 0)
      console.log(
        `damage (seed ${seed}): byte ${at} of ${bigFile.length} flipped in chunk at ${hit.offset}: ` +
          `${landed.size} of ${big.rows.length} rows delivered, ${lost.length} lost (rows ${lost[0]}..${lost.at(-1)})`,
      )
      // The unit of loss is the damaged chunk: one run of rows, not the batch.
      expect(landed.size).toBeGreaterThan(0)
      expect(lost.length).toBeGreaterThan(0)
      expect(lost.at(-1)! - lost[0]! + 1).toBe(lost.length)
      expect(lost.length).toBeLessThan(big.rows.length / 2)
      for (const i of lost) accepted.delete(big.rows[i]!.request_id)

      expect(found).toMatchObject({ segmentsDone: 4, state: 'done' })
      expect(found.damagedRecords).toBeGreaterThanOrEqual(2)
      expect(segmentsIn(dir)).toEqual([])
      const entries = await stack.core.outage.quarantine.list()
      const bigEntry = entries.find((e) => e.id === `journal-${segmentIdOf(big.token)}`)!
      expect(bigEntry.reason).toMatch(
        /damaged compressed journal segment: bad-crc at byte \d+ of the compressed file/,
      )
      expect(bigEntry.reason).toContain(`${lost.length} of its ${big.rows.length} rows lost`)
      expect(bigEntry.rowCount).toBe(landed.size)
      const ruinedEntry = entries.find((e) => e.id === `journal-${segmentIdOf(ruined.token)}`)!
      expect(ruinedEntry.reason).toMatch(/damaged compressed journal segment: .*0 good rows delivered/)
      expect(ruinedEntry.rowCount).toBe(0)
      // Kept byte for byte for an operator (never truncated).
      expect(
        readFileSync(join(stack.core.outage.quarantine.dir, ruinedEntry.file!)).equals(ruinedBytes),
      ).toBe(true)
      expect(readFileSync(join(stack.core.outage.quarantine.dir, bigEntry.file!)).equals(bigFile)).toBe(true)
      // No loop: the drainer goes on polling and finds nothing more to do.
      const polls = d.progress()
      await new Promise((r) => setTimeout(r, 200))
      expect(d.progress()).toMatchObject({
        segmentsDone: polls.segmentsDone,
        damagedRecords: polls.damagedRecords,
        state: 'done',
      })
      await d.stop()
      expect(first.rows.every((r) => accepted.has(r.request_id))).toBe(true)
      expect(last.rows.every((r) => accepted.has(r.request_id))).toBe(true)
      await expectEveryRowOnce()
    })
  })
})

describe('recorded groups with compressed members', () => {
  it('are redone exactly as recorded, and one with a compressed member gone is known to have landed', async () => {
    await inJournalDataDir('packed-groups', async ({ dir }) => {
      const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
      const b = Array.from({ length: 8 }, () => parkedBatch(journal, 5, { mergeable: true }))
      // All compressed but b0 and b2: groups mix both kinds.
      await compactAll(journal, [b[0]!.token, b[2]!.token])
      await journal.close()
      expect(compressedIn(dir)).toHaveLength(6)
      const insert = (token: string, members: typeof b) =>
        stack.core.outage.insertBatch(
          { batchId: token, createdAt: Date.now(), rows: members.flatMap((m) => m.rows) },
          { rowsChecked: false },
        )
      // A group of b1..b3 was recorded and its insert landed; the process died before any cleanup.
      // A drainer that groups by 1,000 rows now would take b0..b7 in one insert: counted twice.
      const first = [b[1]!, b[2]!, b[3]!]
      const t1 = groupToken(first.map((m) => m.token))
      writeFileSync(
        intentFile(dir, t1),
        JSON.stringify({ token: t1, members: first.map((m) => segmentIdOf(m.token)) }),
      )
      await insert(t1, first)
      // A group of b5, b6 landed and b5's (compressed) segment was already deleted when the process died.
      const second = [b[5]!, b[6]!]
      const t2 = groupToken(second.map((m) => m.token))
      writeFileSync(
        intentFile(dir, t2),
        JSON.stringify({ token: t2, members: second.map((m) => segmentIdOf(m.token)) }),
      )
      await insert(t2, second)
      expect(fileOf(dir, b[5]!.token)).toMatch(/\.jnlz$/)
      rmSync(join(dir, fileOf(dir, b[5]!.token)))

      const before = ch.stats.usageInserts
      const d = drainer(dir)
      await d.done()
      await d.stop()
      expect(segmentsIn(dir)).toEqual([])
      expect(intentsIn(dir)).toEqual([])
      // The first group again (dropped by ClickHouse as a repeat), then b0, b4, b7 together; nothing for b6.
      expect(ch.stats.usageInserts - before).toBe(2)
      await expectEveryRowOnce()
    })
  })
})
