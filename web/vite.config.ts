import adapter from '@sveltejs/adapter-static'
import { sveltekit } from '@sveltejs/kit/vite'
import { defineConfig } from 'vite'

// A static single-page app: the product serves web/build itself on the same
// origin as the API, so the session cookie and the live WebSocket just work.
// Every unknown path falls back to index.html and the client router takes it.
// `npm run dev -w web` proxies the API to a running product (npm start).
const target = process.env.TOKENMETER_URL ?? 'http://127.0.0.1:8787'

export default defineConfig({
  plugins: [
    sveltekit({
      adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: true }),
      alias: { $lib: 'src/lib' },
    }),
  ],
  server: {
    proxy: {
      '/api': { target, ws: true },
    },
  },
  build: { chunkSizeWarningLimit: 1500 },
})
