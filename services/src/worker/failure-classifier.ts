/**
 * Transient failures (ClickHouse unreachable, overloaded, slow) go to the
 * spill path and are replayed; permanent ones are rows the schema rejects,
 * which no retry will fix, and go to the quarantine. Anything unrecognised is
 * treated as transient: replaying a batch costs nothing thanks to the dedup
 * token, quarantining a good batch would need a human.
 */
export type FailureKind = 'transient' | 'permanent'

// ClickHouse error codes that mean "this data cannot be parsed into this schema".
const ROW_DATA_CODES = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  376, // CANNOT_PARSE_UUID
  407, // DECIMAL_OVERFLOW
  441, // CANNOT_PARSE_BOOL (older servers), kept for completeness
  467, // CANNOT_PARSE_BOOL
])

/** Raised by the inserter when rows fail our own row schema before they reach ClickHouse. */
export class RowSchemaError extends Error {}

export function classifyFailure(err: unknown): FailureKind {
  if (err instanceof RowSchemaError) return 'permanent'
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | undefined
  const code = typeof e?.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : e?.code
  if (typeof code === 'number' && ROW_DATA_CODES.has(code)) return 'permanent'
  // Everything else, including ECONNREFUSED/ECONNRESET/timeouts, HTTP 5xx,
  // TOO_MANY_PARTS (252), MEMORY_LIMIT_EXCEEDED (241), TIMEOUT_EXCEEDED (159)
  // and schema drift such as UNKNOWN_TABLE (a migration pending), is retried.
  return 'transient'
}

// Failures that can only happen before a connection exists, so before a byte
// of the insert left this process: refused, or the host name did not resolve.
// (Unreachable-host errors are left out: they can also end a live connection.)
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * Whether a failed insert certainly stored nothing. Only then may its batch
 * share a dedup token with others at replay; a timeout, a reset connection or
 * an error from ClickHouse itself may follow a commit (in the raw table or in
 * some of the views), and such a batch must replay alone under its own token.
 */
export function insertNeverSent(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown; notSent?: unknown } | undefined, depth = 0;
    e && depth < 4;
    depth++
  ) {
    if (e.notSent === true) return true
    if (typeof e.code === 'string' && NOT_SENT_CODES.has(e.code)) return true
    e = e.cause as typeof e
  }
  return false
}
