import adapter from '@sveltejs/adapter-static'

/**
 * A static single-page app: the product serves web/build itself on the same
 * origin as the API, so the session cookie and the live WebSocket just work.
 * Every unknown path falls back to index.html and the client router takes it.
 */
/** @type {import('@sveltejs/kit').Config} */
const config = {
  kit: {
    adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: true }),
  },
}

export default config
