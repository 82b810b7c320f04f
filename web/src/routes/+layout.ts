// A client-only SPA: data comes from the API at runtime, never at build time.
export const ssr = false
export const prerender = false
export const trailingSlash = 'never'
