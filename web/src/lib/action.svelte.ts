/**
 * One thing a person does on an admin page (create, save, revoke, delete):
 * busy while it runs, so its button can wait, and its error in words, so the
 * page can show it. The page says what to do next when it worked.
 */
export class Action {
  busy = $state(false)
  error = $state('')

  /** Runs `fn` (after `confirm`, if given, is accepted); true when it worked. */
  async run(fn: () => Promise<unknown>, opts: { confirm?: string } = {}): Promise<boolean> {
    if (opts.confirm && !window.confirm(opts.confirm)) return false
    this.busy = true
    this.error = ''
    try {
      await fn()
      return true
    } catch (err) {
      this.error = (err as Error).message
      return false
    } finally {
      this.busy = false
    }
  }
}
