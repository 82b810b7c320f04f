import { existsSync, statSync } from 'node:fs'
import { dirname, join, normalize, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { Core } from './bootstrap.ts'
import { HttpError } from './core/errors/http-error.ts'

/** A NUL or control character can name no file (the filesystem call would throw: a 500). */
function refuseControlCharacters(path: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(path)) {
    throw new HttpError(
      400,
      'invalid_path',
      'The path contains a control character (such as %00); remove it.',
    )
  }
}

/** Where `npm run build:web` writes the static dashboard (adapter-static). */
export const WEB_BUILD_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../web/build')

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tokenmeter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2937}
code{background:#f3f4f6;padding:.1rem .35rem;border-radius:.25rem}</style></head>
<body><h1>Tokenmeter is running</h1>
<p>The dashboard has not been built yet. Run <code>npm run build:web</code> and reload this page.</p>
<p>The API is up: try <a href="/api/openapi.json"><code>/api/openapi.json</code></a>.</p></body></html>`

function safeDecode(p: string): string {
  try {
    return decodeURIComponent(p)
  } catch {
    // A malformed escape is the client's: look the path up as written (a 404 at worst).
    return p
  }
}

// Paths the dashboard must never shadow: unknown API or gateway paths stay JSON 404s.
const RESERVED = /^\/(api|v1)(\/|$)/

/**
 * Serves the built SvelteKit dashboard on the product's own origin (so the
 * session cookie and the live WebSocket need no CORS), with a single-page-app
 * fallback: any other GET that is not a file gets index.html and the client
 * router takes over. Hashed assets are cached forever, index.html never.
 */
export const webRoutes: FastifyPluginAsync<{ core: Core; root?: string }> = async (app, opts) => {
  const root = opts.root ?? WEB_BUILD_DIR
  const built = existsSync(join(root, 'index.html'))

  if (!built) {
    app.get('/*', async (request, reply) => {
      if (RESERVED.test(request.url)) return reply.callNotFound()
      refuseControlCharacters(safeDecode(request.url.split('?')[0] ?? '/'))
      return reply.type('text/html; charset=utf-8').send(NOT_BUILT_PAGE)
    })
    return
  }

  // serve:false: we route ourselves so that the fallback and the reserved prefixes are explicit.
  await app.register(fastifyStatic, { root, serve: false })

  const sendIndex = (reply: FastifyReply) =>
    reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false })

  app.get('/*', async (request, reply) => {
    const path = safeDecode(request.url.split('?')[0] ?? '/')
    if (RESERVED.test(path)) return reply.callNotFound()
    refuseControlCharacters(path)
    const rel = normalize(path).replace(/^[/\\]+/, '')
    const abs = join(root, rel)
    const isFile =
      rel !== '' && abs.startsWith(root + sep) && statSync(abs, { throwIfNoEntry: false })?.isFile()
    if (!isFile) return sendIndex(reply)
    if (rel === 'index.html') return sendIndex(reply)
    if (rel.startsWith('_app/immutable/')) {
      return reply.sendFile(rel, { immutable: true, maxAge: '365d' })
    }
    return reply.sendFile(rel, { maxAge: '1h' })
  })
}
