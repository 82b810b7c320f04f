import { ClickHouseError } from '@clickhouse/client'
import { describe, expect, it } from 'vitest'
import { classifyFailure, RowSchemaError } from './failure-classifier.ts'

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
})
