import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyHelmetOptions } from '@fastify/helmet'

/**
 * The dashboard's only inline scripts are the two SvelteKit writes into
 * index.html (theme before first paint, app bootstrap). They are allowed by
 * their SHA-256, read from the build at start, so no other inline script runs.
 */
export function inlineScriptHashes(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(
    (m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`,
  )
}

/**
 * Security headers for every answer from the API and the dashboard: a CSP
 * allowing only our own origin (the live WebSocket is same-origin: 'self'),
 * no framing (clickjacking), nosniff, no referrer. Style attributes stay
 * allowed: Svelte and the charts set inline styles.
 */
export function securityHeaders(webRoot: string): FastifyHelmetOptions {
  const index = join(webRoot, 'index.html')
  const hashes = existsSync(index) ? inlineScriptHashes(readFileSync(index, 'utf8')) : []
  return {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'", ...hashes],
        'style-src': ["'self'", "'unsafe-inline'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'self'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // Served over plain HTTP on a laptop as well: HSTS is the TLS proxy's call.
    strictTransportSecurity: false,
  }
}
