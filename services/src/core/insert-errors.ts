/**
 * Thrown for a batch that was never sent to ClickHouse (the recorder's insert
 * backlog was full). Unlike a failed insert, it cannot have been stored, which
 * lets the replay merge it with other such batches (worker/replay-groups.ts).
 */
export class InsertNotSentError extends Error {
  readonly notSent = true
}
