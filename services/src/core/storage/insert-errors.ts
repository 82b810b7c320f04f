/**
 * Thrown for a batch that was never sent to ClickHouse (the recorder's insert
 * backlog was full). Unlike a failed insert, it cannot have been stored, which
 * lets the replay merge it with other such batches (worker/replay-groups.ts).
 */
export class InsertNotSentError extends Error {
  readonly notSent = true
}

/**
 * Wraps the failure of a journaled batch (one whose token names a journal
 * segment) on its way to a spill store. Such a batch may be delivered again
 * under the same token after a crash (worker/journal-recovery.ts), so every copy
 * of it must replay alone under that token: it is never `mergeable`, whatever
 * the cause (this error carries no cause chain the classifier would read as
 * "never sent"). The message keeps the original failure for logs.
 */
export class JournaledBatchError extends Error {
  constructor(original: unknown) {
    super(
      `journaled batch (replays alone under its journal token): ${String((original as Error)?.message ?? original)}`,
    )
  }
}

/**
 * A spill store that did not take a batch and certainly holds no copy of it
 * (over budget, or it refused the command before sending it). With the
 * journal on, the batch then stays in the journal (parked) instead of going
 * to another store.
 */
export class SpillRefusedError extends Error {}
