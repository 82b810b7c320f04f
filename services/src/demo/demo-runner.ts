import type { Core } from '../bootstrap.ts'
import { type DemoSeedResult, seedDemo } from './demo-seed.ts'
import { type DemoTraffic, startDemoTraffic } from './demo-traffic.ts'

/**
 * What server.ts calls for the embedded default's demo, kept here so the
 * server's own edit stays two lines: seed before listening, traffic after.
 */
export interface DemoRun {
  seed: DemoSeedResult
  traffic?: DemoTraffic
  stop(): Promise<void>
}

export async function prepareDemo(core: Core): Promise<DemoSeedResult> {
  const started = Date.now()
  const seed = await seedDemo(core)
  if (seed.insertedRows > 0) {
    console.log(
      `  Demo: seeded ${seed.insertedRows} rows of history in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    )
  }
  return seed
}

/** A wildcard listen address is not a destination: talk to ourselves over loopback. */
export function loopbackUrl(address: string): string {
  const u = new URL(address)
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]' || u.hostname === '::') u.hostname = '127.0.0.1'
  return u.origin
}

export function startDemo(
  core: Core,
  seed: DemoSeedResult,
  opts: { address: string; url: string; gateway: boolean },
): DemoRun {
  const rps = core.env.DEMO_TRAFFIC_RPS
  const traffic =
    opts.gateway && rps > 0 && seed.liveKeys.length > 0
      ? startDemoTraffic({
          gatewayUrl: loopbackUrl(opts.address),
          keys: seed.liveKeys,
          rps,
          logger: core.log.child({ module: 'demo-traffic' }),
        })
      : undefined
  console.log(
    `  Demo: ${seed.historyRows} rows of labelled history (tag "demo")${traffic ? `, live traffic at ~${rps} req/s through the simulated provider` : ''}; DEMO=false turns it off`,
  )
  if (seed.signInToken) {
    console.log(
      `  Sign in at ${opts.url}/signin as the demo admin with this one-time token (valid 24 h): ${seed.signInToken}`,
    )
  }
  return { seed, traffic, stop: async () => traffic?.stop() }
}
