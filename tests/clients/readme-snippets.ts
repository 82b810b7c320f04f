import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The README's "Point your tools at it" instructions, read by the tests that
 * run those tools, so the instructions are tested exactly as written: the
 * tests substitute only the gateway's URL and the key.
 */

const README = join(import.meta.dirname, '../../README.md')
export const README_URL = 'http://localhost:8787'
export const README_KEY = 'tm_…'

/** The code blocks in the named `###` subsection of "## Point your tools at it", by language. */
export function readmeBlocks(tool: string, lang: string): string[] {
  const text = readFileSync(README, 'utf8')
  const section = text.split(/^## /m).find((s) => s.startsWith('Point your tools at it'))
  if (!section) throw new Error('README has no "## Point your tools at it" section')
  const sub = section.split(/^### /m).find((s) => s.startsWith(tool))
  if (!sub) throw new Error(`README has no "### ${tool}" under "Point your tools at it"`)
  return [...sub.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\``, 'gm'))].map((m) => m[1]!)
}

/** Replaces the README's placeholder URL and key with the test gateway's. */
export function substitute(text: string, url: string, key: string): string {
  return text.replaceAll(README_URL, url).replaceAll(README_KEY, key)
}

/** `export NAME=value` lines of a shell block (single-quoted or bare values), substituted. */
export function readmeEnv(tool: string, url: string, key: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const block of readmeBlocks(tool, 'sh')) {
    for (const m of block.matchAll(/^export ([A-Z_][A-Z0-9_]*)=(?:'([^']*)'|(\S*))/gm)) {
      env[m[1]!] = substitute(m[2] ?? m[3] ?? '', url, key)
    }
  }
  if (Object.keys(env).length === 0) throw new Error(`README's ${tool} section exports no variables`)
  return env
}
