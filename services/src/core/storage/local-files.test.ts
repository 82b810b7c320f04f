import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isMissingFile, readFileIfPresent } from './local-files.ts'

const dir = mkdtempSync(join(tmpdir(), 'tokenmeter-local-files-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('readFileIfPresent', () => {
  it('reads a file, answers undefined for a missing one, and throws every other failure', async () => {
    writeFileSync(join(dir, 'ack'), '42')
    expect(await readFileIfPresent(join(dir, 'ack'), 'utf8')).toBe('42')
    expect(await readFileIfPresent(join(dir, 'ack'))).toEqual(Buffer.from('42'))
    expect(await readFileIfPresent(join(dir, 'gone'), 'utf8')).toBeUndefined()
    // A directory where a file was expected is a fault, not an absence.
    const err = await readFileIfPresent(dir).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'EISDIR' })
    expect(isMissingFile(err)).toBe(false)
  })
})
