/**
 * Preloaded into @portkey-ai/gateway (node --import) by the gateway benchmark.
 * Portkey 1.15.2 on Node streams by re-wrapping the upstream fetch Response
 * and then appending headers to it; with @hono/node-server's Response the
 * headers are still fetch's immutable ones, so every streamed chat completion
 * fails with "TypeError: immutable" (Portkey-AI/gateway#1389, #1550). This
 * hands Portkey responses whose headers it may change: one extra Response
 * object per request, the least we could do to measure its streaming at all.
 */
const upstreamFetch = globalThis.fetch
globalThis.fetch = async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
  const res = await upstreamFetch(input, init)
  return new Response(res.body, {
    status: res.status,
    statusText: res.statusText,
    headers: new Headers(res.headers),
  })
}
