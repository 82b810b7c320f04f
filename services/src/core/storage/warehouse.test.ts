import { describe, expect, it } from 'vitest'
import { encodeRows } from './warehouse.ts'

describe('encodeRows', () => {
  it('sends rows of one shape compact, with the column list', () => {
    expect(
      encodeRows([
        { a: 1, b: 2 },
        { a: 3, b: 4 },
      ]),
    ).toEqual({
      columns: ['a', 'b'],
      format: 'JSONCompactEachRow',
      body: '[1,2]\n[3,4]\n',
    })
  })
  it('keeps each row whole when rows carry different optional fields, even as many of them', () => {
    // e.g. reasoning_tokens on one row and price_unknown on the other
    const rows = [
      { a: 1, reasoning_tokens: 5 },
      { a: 2, price_unknown: true },
    ]
    expect(encodeRows(rows)).toEqual({
      columns: [],
      format: 'JSONEachRow',
      body: '{"a":1,"reasoning_tokens":5}\n{"a":2,"price_unknown":true}\n',
    })
  })
})
