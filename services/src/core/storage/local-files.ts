import { readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'

/**
 * Spool, journal and quarantine files come and go under our feet (a replay
 * deletes a segment it finished, another process takes a lock): a file that
 * is not there is an answer, not a fault. Every other failure (EACCES, EIO)
 * is thrown to the caller.
 */
export function isMissingFile(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
}

/** The file's contents, or undefined when it does not exist. */
export async function readFileIfPresent(path: string): Promise<Buffer | undefined>
export async function readFileIfPresent(path: string, encoding: 'utf8'): Promise<string | undefined>
export async function readFileIfPresent(
  path: string,
  encoding?: 'utf8',
): Promise<Buffer | string | undefined> {
  try {
    return encoding ? await readFile(path, encoding) : await readFile(path)
  } catch (err) {
    if (isMissingFile(err)) return undefined
    throw err
  }
}

/** The names in a directory, or none when the directory does not exist (yet). */
export function readdirIfPresent(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (err) {
    if (isMissingFile(err)) return []
    throw err
  }
}

/** Whether a process still runs (the owner named in a lock or segment file); EPERM: it runs as someone else. */
export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
