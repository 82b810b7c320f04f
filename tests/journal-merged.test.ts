import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createUsageJournal,
  segmentIdOf,
  type UsageJournal,
} from '../services/src/core/usage/usage-journal.ts'
import { intentFile, startJournalRecovery } from '../services/src/worker/journal-recovery.ts'
import { groupToken } from '../services/src/worker/replay-groups.ts'
import { type ClickHouseHttp, startClickHouseHttp } from './helpers/clickhouse-http.ts'
import { makeUsageRow, waitFor } from './helpers/clickhouse-http-checks.ts'
import {
  expectEveryRowOnce as expectEveryRowOnceIn,
  inJournalDataDir,
  intentsIn,
  parkBatch,
  segmentsIn,
} from './helpers/journal-fixtures.ts'
import { startTestStack, TEST_ADMIN_TOKEN, type TestStack } from './helpers/test-core.ts'
import { seededRandom } from './helpers/test-seed.ts'

/**
 * The journal as the local outage store (core/usage/usage-journal.ts) and its
 * drainer's merged inserts (worker/journal-recovery.ts), in server mode over
 * HTTP so the inserts that reach ClickHouse are counted
 * (tests/helpers/clickhouse-http.ts):
 * - an outage's batches, parked in the journal, drain in far fewer inserts
 *   than there are batches;
 * - a journal of 2,000 parked batches is recovered by the product's real
 *   process, SIGKILLed mid-recovery (once right after a group's insert
 *   committed and its answer was lost, then at seeded moments), and
 *   recovered again;
 * - recorded groups are redone exactly as recorded, and a recorded group
 *   with a member already gone is known to have landed;
 * - a full journal keeps rows in memory, and they still land once.
 * Each ends with every row once in the raw table and every rollup equal to it.
 */
const quiet = pino({ enabled: false })
let ch: ClickHouseHttp
let stack: TestStack
const accepted = new Set<string>()
let n = 0
const children = new Set<ChildProcess>()
const { seed, random } = seededRandom('journal-merged kill timings')

beforeAll(async () => {
  ch = await startClickHouseHttp()
  stack = await startTestStack({
    env: {
      CLICKHOUSE_URL: ch.url,
      CLICKHOUSE_INSERT_TIMEOUT_MS: '2000',
      // Batches are cut by the test's flushes; merged inserts carry up to 2,000 rows.
      RECORDER_MAX_ROWS: '2000',
      RECORDER_FLUSH_MS: '60000',
    },
    roles: ['api'],
  })
})
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await stack?.close()
  await ch?.close()
})

const expectEveryRowOnce = () => expectEveryRowOnceIn(stack.core.warehouse, accepted)

const parkedBatch = (journal: UsageJournal, rows: number, opts: { mergeable: boolean; perWrite?: number }) =>
  parkBatch(journal, rows, opts, { accepted, nextRow: () => makeUsageRow(n++) })

describe('an outage held in the journal', () => {
  it('parks the batches ClickHouse refused and replays them merged: far fewer inserts than batches', async () => {
    const BATCHES = 1_000
    const journal = stack.core.journal!
    await ch.stop()
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < 5; i++) {
        const row = makeUsageRow(n++)
        stack.core.recorder.record(row)
        accepted.add(row.request_id)
      }
      await stack.core.recorder.flush()
    }
    expect(stack.core.recorder.stats()).toMatchObject({ parked: BATCHES * 5, pendingRows: 0 })
    const listed = await stack.core.outage.listBatches(5_000)
    expect(listed.filter((b) => b.store === 'journal')).toHaveLength(BATCHES)
    expect(listed.filter((b) => b.rows !== 5)).toEqual([])
    // Refused connections: never sent, mergeable. The first insert may have met the
    // keep-alive socket the stop cut (a reset: it may have landed), so it is held.
    const held = listed.filter((b) => !/\.unsent\.jnlz?$/.test(b.location))
    expect(held.length).toBeLessThanOrEqual(2)
    expect(held.every((b) => /\.held\.jnlz?$/.test(b.location))).toBe(true)
    const one = await stack.core.outage.inspect(listed[0]!.batchId)
    expect(one?.rowsData).toHaveLength(5)
    // Nothing went to the disk spool: with the journal on, it is the only local copy.
    expect((await stack.core.outage.status()).disk.bytes).toBe(0)
    expect(journal.journal.status().segments).toBeGreaterThanOrEqual(BATCHES)

    const before = ch.stats.usageInserts
    await ch.start()
    await waitFor(
      'the journal to drain',
      async () =>
        segmentsIn(journal.journal.dir).length === 0 && journal.recovery.progress().state === 'done',
      120_000,
    )
    const inserts = ch.stats.usageInserts - before
    console.log(`outage: ${BATCHES} parked batches replayed in ${inserts} inserts`)
    expect(inserts).toBeLessThanOrEqual(BATCHES / 50)
    expect(journal.recovery.progress().inserts).toBeLessThanOrEqual(BATCHES / 50)
    expect(journal.journal.status()).toMatchObject({ bytes: 0 })
    await expectEveryRowOnce()
  }, 180_000)
})

describe('a journal of thousands of batches, recovered by a process killed mid-recovery', () => {
  const BATCHES = 2_000
  const GROUP_ROWS = 500

  function startProduct(dataDir: string): ChildProcess {
    const child = spawn(process.execPath, ['services/src/server.ts'], {
      env: {
        ...process.env,
        ROLES: 'api',
        PORT: '0',
        DATA_DIR: dataDir,
        CLICKHOUSE_URL: ch.url,
        CLICKHOUSE_INSERT_TIMEOUT_MS: '5000',
        RECORDER_MAX_ROWS: String(GROUP_ROWS),
        DEMO: 'false',
        LOG_LEVEL: 'silent',
        ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    children.add(child)
    child.on('exit', () => children.delete(child))
    child.stderr!.resume()
    return child
  }

  async function kill(child: ChildProcess) {
    if (child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }

  it('inserts each row once, in far fewer inserts than batches, rollups equal to raw', async () => {
    await inJournalDataDir('merged', async ({ dataDir, dir }) => {
      // What a long outage leaves: batches whose inserts were refused (mergeable),
      // and a few whose insert may have landed (held: each alone under its token).
      const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
      for (let b = 0; b < BATCHES; b++) parkedBatch(journal, 5, { mergeable: true })
      const held = [0, 1, 2].map(() => parkedBatch(journal, 5, { mergeable: false }))
      await journal.close()
      // One of them did land before the crash.
      await stack.core.outage.insertBatch(
        { batchId: held[1]!.token, createdAt: Date.now(), rows: held[1]!.rows },
        { rowsChecked: false },
      )
      expect(segmentsIn(dir)).toHaveLength(BATCHES + 3)
      const before = ch.stats.usageInserts

      // 1: killed right after a group's insert committed and its answer was lost.
      ch.loseResponses(1, 'requests')
      let child = startProduct(dataDir)
      await waitFor('a group insert to commit without an answer', async () => ch.stats.lostResponses > 0)
      await kill(child)
      const kills = [
        `after a lost answer (${ch.stats.usageInserts - before} inserts so far, ${intentsIn(dir).length} group recorded)`,
      ]

      // 2..3: at seeded moments while it delivers.
      for (let k = 0; k < 2; k++) {
        child = startProduct(dataDir)
        const target = ch.stats.usageInserts + 1 + Math.floor(random() * 4)
        await waitFor('the delivery to go on', async () => ch.stats.usageInserts >= target, 120_000)
        await new Promise((r) => setTimeout(r, random() * 300))
        await kill(child)
        kills.push(`after insert ${ch.stats.usageInserts - before}`)
      }
      const left = segmentsIn(dir).length
      expect(left).toBeGreaterThan(0)

      child = startProduct(dataDir)
      await waitFor(
        'the last process to deliver the rest',
        async () => segmentsIn(dir).length === 0 && intentsIn(dir).length === 0,
        180_000,
      )
      await kill(child)
      const inserts = ch.stats.usageInserts - before
      console.log(
        `recovery (seed ${seed}): ${BATCHES + 3} batches, SIGKILLs ${kills.join(', ')}; ` +
          `${left} segments left for the last process; ${inserts} inserts in all`,
      )
      // 10,015 rows in groups of 500 rows, 3 held batches alone, repeats after the kills.
      expect(inserts).toBeLessThan(BATCHES / 20)
      await expectEveryRowOnce()
    })
  }, 600_000)
})

describe('recorded groups', () => {
  it('are redone exactly as recorded, and one with a member gone is known to have landed', async () => {
    await inJournalDataDir('groups', async ({ dir }) => {
      const journal = createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet })
      const b = Array.from({ length: 8 }, () => parkedBatch(journal, 5, { mergeable: true }))
      await journal.close()
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
      // A group of b5, b6 landed and b5's segment was already deleted when the process died.
      const second = [b[5]!, b[6]!]
      const t2 = groupToken(second.map((m) => m.token))
      writeFileSync(
        intentFile(dir, t2),
        JSON.stringify({ token: t2, members: second.map((m) => segmentIdOf(m.token)) }),
      )
      await insert(t2, second)
      const b5 = segmentsIn(dir).find((f) => f.startsWith(segmentIdOf(b[5]!.token)!))!
      rmSync(join(dir, b5))

      const before = ch.stats.usageInserts
      const drainer = startJournalRecovery({
        journal: createUsageJournal({ dir, maxBytes: 1 << 30, fsyncMs: 200, logger: quiet }),
        insertBatch: stack.core.outage.insertBatch,
        quarantine: stack.core.outage.quarantine,
        logger: quiet,
        maxGroupRows: 1_000,
        pollMs: 20,
      })
      await drainer.done()
      await drainer.stop()
      expect(segmentsIn(dir)).toEqual([])
      expect(intentsIn(dir)).toEqual([])
      // The first group again (dropped by ClickHouse as a repeat), then b0, b4, b7 together; nothing for b6.
      expect(ch.stats.usageInserts - before).toBe(2)
      await expectEveryRowOnce()
    })
  })
})

describe('a full journal', () => {
  it('keeps what it cannot take in memory; everything lands once when ClickHouse is back', async () => {
    const small = await startTestStack({
      env: {
        CLICKHOUSE_URL: ch.url,
        CLICKHOUSE_INSERT_TIMEOUT_MS: '2000',
        RECORDER_MAX_ROWS: '2000',
        RECORDER_FLUSH_MS: '60000',
        JOURNAL_MAX_BYTES: '20000',
      },
      roles: ['api'],
    })
    try {
      await ch.stop()
      // About 140 KB as JSON lines, some 80 KB even once compressed while parked
      // (worker/journal-compaction.ts: a 5-row segment keeps about 800 bytes): past the bound either way.
      for (let b = 0; b < 100; b++) {
        for (let i = 0; i < 5; i++) {
          const row = makeUsageRow(n++)
          small.core.recorder.record(row)
          accepted.add(row.request_id)
        }
        await small.core.recorder.flush()
      }
      const j = small.core.journal!.journal.status()
      expect(j.rejectedRows).toBeGreaterThan(0)
      expect(j.bytes).toBeLessThanOrEqual(20_000 + 2_000)
      // Parked while there was room; the rest held in memory, retried every flush.
      const stats = small.core.recorder.stats()
      expect(stats.parked).toBeGreaterThan(0)
      expect(stats.pendingRows).toBeGreaterThan(0)
      expect(stats.parked + stats.pendingRows).toBe(500)
      // Not in the journal: lost if the process stopped now (it would count them as dropped).
      expect(stats.memoryOnlyRows).toBe(stats.pendingRows)
      const body = (
        await small.app.inject({
          url: '/api/admin/ops/status',
          headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
        })
      ).json()
      expect(body.journal.rejectedRows).toBe(j.rejectedRows)
      expect(body.rowsDropped).toBe(0)

      await ch.start()
      await waitFor('everything to land', async () => {
        await small.core.recorder.flush()
        return (
          small.core.recorder.stats().pendingRows === 0 &&
          segmentsIn(small.core.journal!.journal.dir).length === 0
        )
      })
      await expectEveryRowOnce()
    } finally {
      await small.close()
    }
  })
})
