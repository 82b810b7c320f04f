import { createRng, type Rng } from '../../services/src/demo/prng.ts'

/**
 * One seeded random source per test file, its seed printed so a failing run
 * (say a SIGKILL that landed at an unlucky moment) can be replayed exactly:
 * `TEST_SEED=1234 npm exec -- vitest run tests/<file>`.
 */
export function seededRandom(label: string): { seed: number; random: Rng } {
  const fromEnv = process.env.TEST_SEED
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Date.now() % 1_000_000
  if (!Number.isInteger(seed)) throw new Error(`TEST_SEED must be an integer, got "${fromEnv}"`)
  console.log(`${label}: random seed ${seed} (replay with TEST_SEED=${seed})`)
  return { seed, random: createRng(seed) }
}
