import { describe, expect, it } from 'vitest'
import { signPayload, verifySignature } from './webhook-notifier.ts'

const SECRET = 'whsec-test-0123456789'
const BODY = JSON.stringify({ type: 'tokenmeter.alert', alert: { alertId: 'a1' } })
const NOW = 1_750_000_000

describe('webhook signatures', () => {
  it('verify a fresh delivery; refuse a tampered body, a wrong secret or a malformed header', () => {
    const header = signPayload(SECRET, BODY, NOW)
    expect(header).toMatch(/^t=1750000000,v1=[0-9a-f]{64}$/)
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW + 10 })).toBe(true)
    expect(verifySignature(SECRET, `${BODY} `, header, { nowS: NOW })).toBe(false)
    expect(verifySignature('another-secret-0000', BODY, header, { nowS: NOW })).toBe(false)
    expect(verifySignature(SECRET, BODY, header.replace(/v1=../, 'v1=00'), { nowS: NOW })).toBe(false)
    for (const bad of ['', 'v1=abc', `t=x,${header.split(',')[1]}`, `t=${NOW}`, `t=${NOW},v1=short`]) {
      expect(verifySignature(SECRET, BODY, bad, { nowS: NOW }), bad).toBe(false)
    }
  })

  it('refuse a replay outside the tolerance, in either direction', () => {
    const header = signPayload(SECRET, BODY, NOW)
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW + 300 })).toBe(true)
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW + 301 })).toBe(false)
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW - 301 })).toBe(false)
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW + 3600, toleranceS: 7200 })).toBe(true)
  })

  it('accept any one of several v1 values (secret rotation on the receiver)', () => {
    const old = signPayload('old-secret-000000000', BODY, NOW).split(',')[1]
    const header = `${signPayload(SECRET, BODY, NOW)},${old}`
    expect(verifySignature(SECRET, BODY, header, { nowS: NOW })).toBe(true)
    expect(verifySignature('old-secret-000000000', BODY, header, { nowS: NOW })).toBe(true)
  })
})
