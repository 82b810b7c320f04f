import { mkdir, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { readFileIfPresent } from '../core/storage/local-files.ts'
import { writeFileDurably } from './durable-write.ts'

/**
 * Rows (or spool bytes) that cannot be inserted as they are, kept with the
 * reason until an operator retries or exports them. Nothing is ever dropped
 * silently: a row leaves the pipeline either in ClickHouse or here.
 * One JSON file per entry, written atomically, named by the entry id, so a
 * replay that quarantines the same batch again overwrites it instead of
 * duplicating it.
 */
export interface QuarantineEntry {
  id: string
  kind: 'rows' | 'segment'
  batchId: string
  reason: string
  quarantinedAt: string
  rowCount: number
  /** For kind 'rows': the rejected rows as they were received. */
  rows?: unknown[]
  /** For kind 'segment': the damaged file, kept byte for byte beside the entry. */
  file?: string
  problems?: unknown[]
}

export type QuarantineSummary = Omit<QuarantineEntry, 'rows' | 'problems'>

export interface QuarantineStore {
  readonly dir: string
  put(entry: Omit<QuarantineEntry, 'quarantinedAt'>): Promise<void>
  /** Moves a damaged spool segment in and records why. */
  putSegment(path: string, entry: Omit<QuarantineEntry, 'quarantinedAt' | 'kind' | 'file'>): Promise<void>
  list(): Promise<QuarantineSummary[]>
  get(id: string): Promise<QuarantineEntry | undefined>
  remove(id: string): Promise<void>
  count(): { entries: number; rows: number }
}

const ID = /^[A-Za-z0-9_.-]{1,160}$/

export async function createQuarantineStore(dir: string, logger: Logger): Promise<QuarantineStore> {
  await mkdir(dir, { recursive: true })
  let cache = { entries: 0, rows: 0 }

  async function list(): Promise<QuarantineSummary[]> {
    const names = (await readdir(dir)).filter((n) => n.endsWith('.json'))
    const out: QuarantineSummary[] = []
    for (const n of names) {
      const e = await readEntry(join(dir, n))
      if (!e) continue
      const { rows: _rows, problems: _problems, ...summary } = e
      out.push(summary)
    }
    out.sort((a, b) => a.quarantinedAt.localeCompare(b.quarantinedAt))
    cache = { entries: out.length, rows: out.reduce((n, e) => n + e.rowCount, 0) }
    return out
  }

  async function readEntry(path: string): Promise<QuarantineEntry | undefined> {
    // Gone since the listing: retried or removed by an operator.
    const text = await readFileIfPresent(path, 'utf8')
    if (text === undefined) return undefined
    try {
      return JSON.parse(text) as QuarantineEntry
    } catch (err) {
      // Entries are written whole (write, fsync, rename): this one was damaged on disk.
      logger.error({ path, err: String(err) }, 'quarantine entry unreadable; left in place for an operator')
      return undefined
    }
  }

  const store: QuarantineStore = {
    dir,
    async put(entry) {
      if (!ID.test(entry.id)) throw new Error('invalid quarantine id')
      await writeFileDurably(
        join(dir, `${entry.id}.json`),
        JSON.stringify({ ...entry, quarantinedAt: new Date().toISOString() }),
      )
      await list()
    },
    async putSegment(path, entry) {
      if (!ID.test(entry.id)) throw new Error('invalid quarantine id')
      const file = `${entry.id}.bin`
      await rename(path, join(dir, file))
      await store.put({ ...entry, kind: 'segment', file })
    },
    list,
    async get(id) {
      if (!ID.test(id)) return undefined
      return readEntry(join(dir, `${id}.json`))
    },
    async remove(id) {
      if (!ID.test(id)) return
      const e = await store.get(id)
      if (e?.file) await rm(join(dir, e.file), { force: true })
      await rm(join(dir, `${id}.json`), { force: true })
      await list()
    },
    count: () => cache,
  }
  await list()
  return store
}
