const known = new Set<string>()

/** True for names the runtime's zone database knows (IANA names and 'UTC'). */
export function isTimeZone(tz: string): boolean {
  if (known.has(tz)) return true
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/.test(tz)) return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
  } catch {
    return false
  }
  // Bounded by the zone database, so the cache cannot grow without limit.
  known.add(tz)
  return true
}
