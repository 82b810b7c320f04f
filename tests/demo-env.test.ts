import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { envSchema, parseEnv } from '../services/src/core/config/env.ts'

// .env.example is the user's reference: it must name every variable the schema
// reads (set or commented out), and its values must pass the schema.
describe('.env.example', () => {
  const text = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
  const entries = [...text.matchAll(/^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => ({
    name: m[2] as string,
    value: m[3] as string,
    commented: Boolean(m[1]),
  }))

  it('documents every variable of the env schema, and nothing else', () => {
    const documented = new Set(entries.map((e) => e.name))
    expect([...documented].sort()).toEqual(Object.keys(envSchema.shape).sort())
  })

  it('holds values the schema accepts, equal to the defaults', () => {
    const set = Object.fromEntries(entries.filter((e) => !e.commented).map((e) => [e.name, e.value]))
    const parsed = parseEnv(set)
    const defaults = parseEnv({})
    expect(parsed).toEqual(defaults)
  })
})
