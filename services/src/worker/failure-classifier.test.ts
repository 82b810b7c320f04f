import { ClickHouseError } from '@clickhouse/client'
import { describe, expect, it } from 'vitest'
import { InsertNotSentError } from '../core/storage/insert-errors.ts'
import { TransientInsertError } from './batch-inserter.ts'
import { classifyFailure, insertNeverSent, RowSchemaError } from './failure-classifier.ts'

const chError = (code: string, type: string) => new ClickHouseError({ message: type, code, type })

describe('failure classification', () => {
  it('retries what an outage or overload looks like', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    expect(classifyFailure(refused)).toBe('transient')
    expect(classifyFailure(reset)).toBe('transient')
    expect(classifyFailure(new Error('Timeout error.'))).toBe('transient')
    expect(classifyFailure(chError('252', 'TOO_MANY_PARTS'))).toBe('transient')
    expect(classifyFailure(chError('241', 'MEMORY_LIMIT_EXCEEDED'))).toBe('transient')
    expect(classifyFailure(chError('60', 'UNKNOWN_TABLE'))).toBe('transient')
  })

  it('quarantines rows the schema rejects', () => {
    expect(classifyFailure(chError('376', 'CANNOT_PARSE_UUID'))).toBe('permanent')
    expect(classifyFailure(chError('27', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'))).toBe('permanent')
    expect(classifyFailure(new RowSchemaError('bad'))).toBe('permanent')
  })

  it('tells a batch that was never sent from one whose insert may have landed', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    expect(insertNeverSent(refused)).toBe(true)
    expect(insertNeverSent(new TransientInsertError(refused))).toBe(true)
    expect(insertNeverSent(new InsertNotSentError('insert backlog full'))).toBe(true)
    expect(insertNeverSent(Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }))).toBe(true)
    // Anything that may follow a commit replays alone.
    expect(insertNeverSent(reset)).toBe(false)
    expect(insertNeverSent(new TransientInsertError(reset))).toBe(false)
    expect(insertNeverSent(new Error('Timeout error.'))).toBe(false)
    expect(insertNeverSent(chError('241', 'MEMORY_LIMIT_EXCEEDED'))).toBe(false)
    expect(insertNeverSent(undefined)).toBe(false)
  })
})
