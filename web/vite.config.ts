import { sveltekit } from '@sveltejs/kit/vite'
import { defineConfig } from 'vite'

// `npm run dev -w web` proxies the API to a running product (npm start) so
// the dev server talks to the same endpoints the built app does.
const target = process.env.TOKENMETER_URL ?? 'http://127.0.0.1:8787'

export default defineConfig({
  plugins: [sveltekit()],
  server: {
    proxy: {
      '/api': { target, ws: true, changeOrigin: false },
    },
  },
  build: { chunkSizeWarningLimit: 1500 },
})
