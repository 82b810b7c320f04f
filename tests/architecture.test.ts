import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The rooms of services/src and the arrows between them (docs/ARCHITECTURE.md):
// a room imports only from the rooms below it. core/ is what every role shares,
// so it imports nothing from the others, not even a type. The composition root
// (bootstrap.ts, app.ts, server.ts beside them) may import everything; the
// route plugins and services above core/ take the `Core` they are handed as a
// type from bootstrap.ts.

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../services/src')

/** Which other rooms each room may import from (libraries and @tokenmeter/contract are always allowed). */
const MAY_IMPORT: Record<string, string[]> = {
  core: [],
  budgets: ['core'],
  worker: ['core'],
  alerts: ['core', 'budgets'],
  gateway: ['core', 'budgets'],
  api: ['core', 'budgets', 'alerts', 'worker'],
  demo: ['core'],
  simulator: [],
}
/** The one import above a room that is allowed, type-only: the Core a plugin is handed. */
const CORE_TYPE = 'bootstrap.ts'

interface ImportLine {
  spec: string
  typeOnly: boolean
  line: number
}

/** Static (`import … from`, `export … from`, `import '…'`) and dynamic (`import('…')`) imports of a source text. */
function importsOf(text: string): ImportLine[] {
  const found: ImportLine[] = []
  const patterns = [
    /(?:^|[\n;])\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const m of text.matchAll(patterns[0]!)) {
    const at = (m.index ?? 0) + m[0].indexOf(m[1]!)
    found.push({ spec: m[3]!, typeOnly: Boolean(m[2]), line: text.slice(0, at).split('\n').length })
  }
  for (const m of text.matchAll(patterns[1]!)) {
    found.push({ spec: m[1]!, typeOnly: false, line: text.slice(0, m.index).split('\n').length })
  }
  return found
}

/** The room of a path under services/src: its first directory, or the file itself at the top. */
const roomOf = (path: string) => relative(SRC, path).split('/')[0]!

/** Each import that leaves its room for one it may not use, as `file:line -> spec`. */
function upwardImports(file: string, text: string): string[] {
  const room = roomOf(file)
  const allowed = MAY_IMPORT[room]
  if (!allowed) return []
  return importsOf(text)
    .filter(({ spec }) => spec.startsWith('.'))
    .filter(({ spec, typeOnly }) => {
      const target = roomOf(resolve(dirname(file), spec))
      if (target === room || allowed.includes(target)) return false
      return !(typeOnly && target === CORE_TYPE && room !== 'core')
    })
    .map(({ spec, line }) => `${relative(SRC, file)}:${line} -> ${spec}`)
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

describe('architecture: arrows point down', () => {
  it('finds every kind of import, so that the check below cannot pass by missing one', () => {
    const file = join(SRC, 'core/usage/example.ts')
    const text = [
      "import { a } from '../../worker/disk-spool.ts'",
      'import {',
      '  b,',
      '  type C,',
      "} from '../../gateway/upstreams.ts'",
      "import type { Core } from '../../bootstrap.ts'",
      "export { d } from '../../api/csv.ts'",
      "import '../../alerts/alert.ts'",
      "const e = await import('../../budgets/worst-case.ts')",
      "import { f } from '../storage/warehouse.ts'",
      "import { z } from 'zod'",
    ].join('\n')
    expect(upwardImports(file, text)).toEqual([
      'core/usage/example.ts:1 -> ../../worker/disk-spool.ts',
      'core/usage/example.ts:2 -> ../../gateway/upstreams.ts',
      'core/usage/example.ts:6 -> ../../bootstrap.ts',
      'core/usage/example.ts:7 -> ../../api/csv.ts',
      'core/usage/example.ts:8 -> ../../alerts/alert.ts',
      'core/usage/example.ts:9 -> ../../budgets/worst-case.ts',
    ])
    // Above core/, the Core's type is allowed and a value import of the root is not.
    const plugin = join(SRC, 'api/example.routes.ts')
    expect(
      upwardImports(
        plugin,
        "import type { Core } from '../bootstrap.ts'\nimport { createCore } from '../bootstrap.ts'",
      ),
    ).toEqual(['api/example.routes.ts:2 -> ../bootstrap.ts'])
  })

  it('core/ imports nothing from gateway/, api/, worker/, budgets/, alerts/, demo/, simulator/ or the root', () => {
    const files = sourceFiles(join(SRC, 'core'))
    expect(files.length).toBeGreaterThan(20)
    expect(files.flatMap((f) => upwardImports(f, readFileSync(f, 'utf8')))).toEqual([])
  })

  it('every other room imports only the rooms below it', () => {
    const offending = Object.keys(MAY_IMPORT)
      .filter((room) => room !== 'core')
      .flatMap((room) => sourceFiles(join(SRC, room)))
      .flatMap((f) => upwardImports(f, readFileSync(f, 'utf8')))
    expect(offending).toEqual([])
  })
})
