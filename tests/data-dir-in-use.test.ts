import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createWarehouse, type Warehouse } from '../services/src/core/storage/warehouse.ts'

/**
 * A second product process started on a DATA_DIR whose embedded engine
 * another process holds (a second `npm start` in the same checkout) stops at
 * once with a message that says what to do, not the engine's stack trace.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'tokenmeter-in-use-'))
let holder: Warehouse | undefined

afterAll(async () => {
  await holder?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

describe('a DATA_DIR already in use', () => {
  it('stops the second process with a message naming the directory and the ways out', async () => {
    holder = createWarehouse({ path: join(dataDir, 'clickhouse') })
    const child = spawn(process.execPath, ['services/src/server.ts'], {
      // Only what a start needs: PATH and HOME, not the test run's whole environment.
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATA_DIR: dataDir,
        PORT: '0',
        DEMO: 'false',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect(code).not.toBe(0)
    expect(output).toContain(`${join(dataDir, 'clickhouse')} is in use by another process`)
    expect(output).toContain('CLICKHOUSE_URL')
  }, 60_000)
})
