import { randomUUID } from 'node:crypto'
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
