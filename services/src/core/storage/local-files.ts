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
