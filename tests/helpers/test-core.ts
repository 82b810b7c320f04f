import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp, type Role } from '../../services/src/app.ts'
import { type Core, type CoreOverrides, createCore } from '../../services/src/bootstrap.ts'
import { parseEnv } from '../../services/src/core/config/env.ts'

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789'

export interface TestStack {
  core: Core
  app: FastifyInstance
  dataDir: string
  /** Base URL when started with `listen: true`. */
  url: string
  close(): Promise<void>
}

/**
 * A real Core on the embedded engine in a fresh temporary directory. Only one
 * embedded engine can live in a process, so a test file builds one stack and
 * shares it (vitest runs files in separate forks).
 */
export async function startTestStack(
  opts: {
    env?: Record<string, string>
    overrides?: CoreOverrides
    roles?: Role[]
    listen?: boolean
    /** A directory prepared by the test (a journal left by a crash); removed on close like a fresh one. */
    dataDir?: string
  } = {},
): Promise<TestStack> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'tokenmeter-test-'))
  const roles = opts.roles ?? ['gateway', 'api']
  const env = parseEnv({
    DATA_DIR: dataDir,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    DEMO: 'false',
    LOG_LEVEL: 'silent',
    RECORDER_FLUSH_MS: '200',
    // The background jobs of these roles (the alert monitor with api), and
    // the replay worker, as in the all-in-one process.
    ROLES: [...roles, 'worker'].join(','),
    ...opts.env,
  })
  const core = await createCore(env, opts.overrides)
  const app = await buildApp(core, { roles })
  let url = ''
  if (opts.listen) url = await app.listen({ host: '127.0.0.1', port: 0 })
  else await app.ready()
  return {
    core,
    app,
    dataDir,
    url,
    async close() {
      await app.close()
      await core.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
