import { createHash, randomBytes } from 'node:crypto'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** A new virtual key: `tm_` + 40 base62 characters (~238 bits). */
export function generateKeyPlaintext(prefix = 'tm_'): string {
  const bytes = randomBytes(40)
  let out = prefix
  for (const b of bytes) out += ALPHABET[b % 62]
  return out
}

export function hashKey(plaintext: string): string {
  return createHash('sha256').update(plaintext).digest('hex')
}

/** What may be shown or stored next to usage: enough to recognise a key, not to use it. */
export function keyPrefix(plaintext: string): string {
  return `${plaintext.slice(0, 10)}…`
}

export function newId(kind: string): string {
  return `${kind}_${randomBytes(9).toString('base64url')}`
}

/** A key's state as the API shows it: revoked wins over expired (both refuse the key). */
export function keyStatus(
  k: { revokedAt: Date | null; expiresAt: Date | null },
  now = new Date(),
): 'active' | 'revoked' | 'expired' {
  if (k.revokedAt && k.revokedAt <= now) return 'revoked'
  if (k.expiresAt && k.expiresAt <= now) return 'expired'
  return 'active'
}
