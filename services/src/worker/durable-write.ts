import { randomUUID } from 'node:crypto'
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Replaces a small file so that after a crash or power loss it holds either
 * the old content or the new, never a torn mix: write a temporary file, fsync
 * it, rename it over the target, fsync the directory (the rename itself).
 */
export async function writeFileDurably(path: string, content: string): Promise<void> {
  const tmp = `${path}.${randomUUID()}.tmp`
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(content)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/**
 * writeFileDurably for bytes, on the main thread: the journal's files are
 * written synchronously on purpose (core/usage/usage-journal.ts: libuv's
 * threadpool, which the async fs calls use, can be filled by the embedded
 * engine's queries). Writes `<path>.tmp`, fsyncs it, renames it over `path`
 * and fsyncs the directory, so the file is either absent or whole, and once
 * this returns it survives a power loss. The temporary file is removed on
 * failure.
 */
export function writeFileDurablySync(path: string, parts: readonly Buffer[]): void {
  const tmp = `${path}.tmp`
  try {
    const fd = openSync(tmp, 'w')
    try {
      for (const part of parts) {
        let off = 0
        while (off < part.length) off += writeSync(fd, part, off, part.length - off)
      }
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}
