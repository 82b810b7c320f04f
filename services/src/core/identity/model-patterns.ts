/**
 * A key's `allowedModels`: model names, or patterns where `*` matches any run
 * of characters and everything else matches literally. Matched on the name
 * the client sends, so `claude-*` allows every Claude id, dated or not. An
 * empty list allows every model. The gateway refuses by it (model-resolver.ts);
 * the dashboard's "Available models" lists by it.
 */
export function modelAllowed(patterns: readonly string[], name: string): boolean {
  if (patterns.length === 0) return true
  return patterns.some((p) => {
    if (!p.includes('*')) return p === name
    const re = p
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')
    return new RegExp(`^${re}$`).test(name)
  })
}
