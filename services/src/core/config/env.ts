import { z } from 'zod'

// The only place that reads process.env. Every process (all-in-one, gateway,
// api, worker) parses the same schema once at start; tests build Env objects
// through parseEnv with their own values.
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')

/** The parts a process can run (ROLES). */
/**
 * A provider origin given without a path (`https://api.anthropic.com`, as the
 * Anthropic SDK and Claude Code spell ANTHROPIC_BASE_URL) means its /v1 API:
 * without this the gateway would call `/messages` and every request would be
 * a 404 from the provider. A base URL with a path is taken as it is.
 */
function withApiVersionPath(url: string): string {
  const u = new URL(url)
  if (u.pathname !== '/' || u.search) return url
  u.pathname = '/v1'
  return u.toString()
}

export const PROCESS_ROLES = ['gateway', 'api', 'worker', 'web'] as const
export type ProcessRole = (typeof PROCESS_ROLES)[number]

export const envSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where embedded ClickHouse and the disk spool keep their files. */
  DATA_DIR: z.string().default('./data'),
  /** Set to talk HTTP to a ClickHouse server instead of the embedded engine. */
  CLICKHOUSE_URL: z.url().optional(),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z.string().default(''),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .default('default'),
  /** Name of a ClickHouse cluster: migrations then use Replicated + Distributed tables. */
  CLICKHOUSE_CLUSTER: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
  CLICKHOUSE_INSERT_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /**
   * Embedded engine only: nice value of the engine threads that run an insert.
   * They share the process's cores with the gateway's event loop; above 0 the
   * event loop is served first and inserts take the idle cycles (gateway tail
   * latency, docs/BENCHMARKS.md). 0 = same priority.
   */
  EMBEDDED_INSERT_NICE: z.coerce.number().int().min(0).max(19).default(10),
  RAW_RETENTION_DAYS: z.coerce.number().int().positive().default(400),
  REDIS_URL: z.url().optional(),
  /** Above this many bytes of spilled batches in Redis, new spills go to the disk spool. */
  REDIS_SPILL_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(256 * 1024 * 1024),
  SPOOL_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024 * 1024),
  /**
   * Rows per insert at most (a batch is also cut every RECORDER_FLUSH_MS). Large:
   * an insert of 5,000 rows cost 2-3x the CPU per row of one of 50,000 (docs/BENCHMARKS.md).
   */
  RECORDER_MAX_ROWS: z.coerce.number().int().positive().default(50_000),
  RECORDER_FLUSH_MS: z.coerce.number().int().positive().default(1_000),
  /**
   * The local write-ahead journal of usage rows (DATA_DIR/journal): a row is
   * written there before the client gets the end of its answer, so a killed
   * process loses nothing, and batches ClickHouse does not take stay there
   * until it is back (docs/OUTAGES.md). `off` measures its cost (npm run
   * bench) and falls back to the disk spool as the local outage store;
   * production keeps it on.
   */
  JOURNAL: z.enum(['on', 'off']).default('on'),
  /**
   * Group fsync of the journal, in ms: a power loss (not a process crash) can
   * lose the rows of the last interval. 0 = fdatasync before each answer ends.
   */
  /**
   * Bound of the journal, in bytes on disk. Normally it holds about one
   * batch per process (a segment is deleted as soon as ClickHouse or Redis
   * took its batch); during an outage it holds the parked batches, compressed
   * while they wait (about 41 bytes per row, 360 as written: at 2,000 req/s
   * the default lasts about 3.6 hours, docs/OUTAGES.md). Full: rows are
   * answered and held in memory only, as with a full spool.
   */
  JOURNAL_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024 * 1024),
  JOURNAL_FSYNC_MS: z.coerce.number().int().nonnegative().max(60_000).default(200),
  OPENAI_BASE_URL: z.url().default('https://api.openai.com/v1').transform(withApiVersionPath),
  OPENAI_API_KEY: z.string().optional(),
  ANTHROPIC_BASE_URL: z.url().default('https://api.anthropic.com/v1').transform(withApiVersionPath),
  ANTHROPIC_API_KEY: z.string().optional(),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /**
   * Comma-separated names of extra OpenAI-compatible upstreams (OpenRouter,
   * Groq, Azure OpenAI, vLLM, Ollama...). Each name N is configured by
   * UPSTREAM_<N>_* variables, read by namedUpstreams() below.
   */
  UPSTREAMS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(/^[a-z][a-z0-9-]{0,31}$/, 'upstream names are lower-case letters, digits and -')
          .refine(
            (n) => !['openai', 'anthropic', 'simulated'].includes(n),
            'openai, anthropic and simulated are built in',
          ),
      ),
    ),
  /**
   * A model name without a facade is forwarded to the provider that serves it
   * and priced from the catalogue. false: only facades are served (others get
   * 400 unknown_model).
   */
  MODEL_PASSTHROUGH: bool.default(true),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(10 * 1024 * 1024),
  /** Bootstraps the first admin; without it a random one is printed at start. */
  ADMIN_TOKEN: z.string().min(16, 'ADMIN_TOKEN must be at least 16 characters').optional(),
  SESSION_SECRET: z.string().min(16).optional(),
  /** Seeds demo teams, history and live traffic through the simulated provider. */
  DEMO: bool.default(true),
  /** Demo history seeded on first start: rows over that many days (labelled tag 'demo'). */
  DEMO_HISTORY_ROWS: z.coerce.number().int().nonnegative().default(200_000),
  DEMO_HISTORY_DAYS: z.coerce.number().int().positive().max(365).default(90),
  /** Average requests per second of live demo traffic through the gateway (0 turns it off). */
  DEMO_TRAFFIC_RPS: z.coerce.number().nonnegative().max(1000).default(2),
  /** Budget policy when spend cannot be verified (Redis down): block or allow. */
  BUDGET_FAIL_MODE: z.enum(['closed', 'open']).default('closed'),
  /** Reservation per choice for a request whose client set no output cap, in USD. */
  BUDGET_DEFAULT_RESERVE_USD: z.coerce.number().nonnegative().default(0.5),
  /** Failed gateway authentications per client address per minute before 429. */
  GATEWAY_AUTH_FAILURES_PER_MIN: z.coerce.number().int().positive().default(30),
  /** Live WebSocket fair share, per user: open sockets, subscriptions per second (and burst). */
  LIVE_MAX_SOCKETS_PER_USER: z.coerce.number().int().positive().default(8),
  LIVE_SUBSCRIBES_PER_SEC: z.coerce.number().positive().default(5),
  LIVE_SUBSCRIBE_BURST: z.coerce.number().int().positive().default(20),
  /**
   * How long (ms) an answer of /api/kpis, /api/series or /api/breakdown serves identical requests
   * of the same scope while no write changed the data (api/inflight.ts); 0 = only while it runs.
   */
  USAGE_ANSWER_KEEP_MS: z.coerce.number().int().nonnegative().max(60_000).default(1_000),
  /** ClickHouse refreshes of live views at once, across all subscribers. */
  LIVE_MAX_REFRESHES: z.coerce.number().int().positive().default(2),
  /** Event-loop delay (ms) above which dashboard queries and new subscriptions get 503; 0 = off. */
  LOAD_SHED_EVENT_LOOP_DELAY_MS: z.coerce.number().int().nonnegative().default(1000),
  ALERT_WEBHOOK_URLS: z.string().default(''),
  ALERT_WEBHOOK_SECRET: z.string().default(''),
  /** How often the anomaly detector looks for spikes, runaway days and budget alerts, in ms. */
  ALERT_CHECK_MS: z.coerce.number().int().min(200).max(3_600_000).default(60_000),
  /** Comma-separated origins allowed to open the live WebSocket besides our own. */
  ALLOWED_ORIGINS: z.string().default(''),
  /** Which parts this process runs; the embedded default runs them all. A typo stops the process. */
  ROLES: z
    .string()
    .default('gateway,api,worker,web')
    .superRefine((v, ctx) => {
      const entries = v.split(',').map((r) => r.trim())
      const bad = entries.filter((r) => !(PROCESS_ROLES as readonly string[]).includes(r))
      if (bad.length > 0 || entries.length === 0) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown role ${bad.map((b) => `"${b}"`).join(', ')}; use a comma-separated list of ${PROCESS_ROLES.join(', ')}`,
        })
      }
    }),
  /**
   * Fastify trustProxy behind a TLS-terminating proxy: 'true' (trust all),
   * a hop count, or comma-separated proxy addresses/CIDRs. Then the client
   * address and protocol come from X-Forwarded-*, so the session cookie is
   * Secure and rate limits count the real client. Empty: trust nobody.
   */
  TRUST_PROXY: z
    .string()
    .default('')
    .transform((v): boolean | number | string => {
      const t = v.trim()
      if (t === '' || t === 'false') return false
      if (t === 'true') return true
      return /^\d+$/.test(t) ? Number(t) : t
    }),
  /** Bearer token for GET /metrics (Prometheus scrape). Unset: only ADMIN_TOKEN may read it. */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  /** Sign-in attempts (POST /api/session) per client address per minute. */
  SIGNIN_ATTEMPTS_PER_MIN: z.coerce.number().int().positive().default(20),
  /** Failed authentications on /api per client address per minute; beyond it calls without a valid credential are 429. */
  API_AUTH_FAILURES_PER_MIN: z.coerce.number().int().positive().default(100),
})

/** One named OpenAI-compatible upstream, from UPSTREAM_<NAME>_* (NAME upper-cased, - as _). */
const namedUpstreamSchema = z.object({
  BASE_URL: z.url(),
  /** The credential itself... */
  API_KEY: z.string().min(1).optional(),
  /** ...or the name of the variable that holds it (keeps secrets in the variables your platform injects). */
  API_KEY_ENV: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
  /** Azure OpenAI: sent as the api-version query parameter; the credential then goes in the api-key header. */
  API_VERSION: z.string().min(1).max(64).optional(),
  /** Price catalogue provider id for this upstream's models (default: the upstream's name). */
  CATALOGUE: z.string().min(1).max(64).optional(),
})

export interface NamedUpstream {
  name: string
  baseUrl: string
  apiKey: string | undefined
  /** Set for Azure OpenAI. */
  apiVersion: string | undefined
  /** Which provider of the price catalogue prices its models. */
  catalogue: string
}

export type Env = z.infer<typeof envSchema> & { namedUpstreams: NamedUpstream[] }

export function namedUpstreamPrefix(name: string): string {
  return `UPSTREAM_${name.toUpperCase().replaceAll('-', '_')}_`
}

function namedUpstreams(
  names: string[],
  source: Record<string, string | undefined>,
): NamedUpstream[] | string[] {
  const problems: string[] = []
  const out: NamedUpstream[] = []
  for (const name of names) {
    const prefix = namedUpstreamPrefix(name)
    const vars = Object.fromEntries(
      Object.keys(namedUpstreamSchema.shape).map((k) => [k, source[prefix + k] || undefined]),
    )
    const parsed = namedUpstreamSchema.safeParse(vars)
    if (!parsed.success) {
      for (const i of parsed.error.issues) problems.push(`  ${prefix}${i.path.join('.')}: ${i.message}`)
      continue
    }
    const v = parsed.data
    if (v.API_KEY && v.API_KEY_ENV) {
      problems.push(`  ${prefix}API_KEY / ${prefix}API_KEY_ENV: set one of them, not both`)
      continue
    }
    const apiKey = v.API_KEY ?? (v.API_KEY_ENV ? source[v.API_KEY_ENV] : undefined)
    if (v.API_KEY_ENV && !apiKey) {
      problems.push(`  ${prefix}API_KEY_ENV: the variable ${v.API_KEY_ENV} it names is not set`)
      continue
    }
    out.push({
      name,
      baseUrl: v.BASE_URL,
      apiKey: apiKey || undefined,
      apiVersion: v.API_VERSION,
      catalogue: v.CATALOGUE ?? name,
    })
  }
  return problems.length > 0 ? problems : out
}

export function parseEnv(source: Record<string, string | undefined>): Env {
  const parsed = envSchema.safeParse(source)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`)
    throw new Error(`Invalid configuration:\n${lines.join('\n')}`)
  }
  const upstreams = namedUpstreams(parsed.data.UPSTREAMS, source)
  if (upstreams.some((u) => typeof u === 'string')) {
    throw new Error(`Invalid configuration:\n${upstreams.join('\n')}`)
  }
  return { ...parsed.data, namedUpstreams: upstreams as NamedUpstream[] }
}

/** The roles ROLES names (the schema has checked each entry). */
export function rolesOf(env: Pick<Env, 'ROLES'>): ProcessRole[] {
  return env.ROLES.split(',').map((r) => r.trim() as ProcessRole)
}

export function loadEnv(): Env {
  return parseEnv(process.env)
}
