/**
 * A hostile live-mode client, run as its own process so its work does not
 * share the server's event loop (tests/live-abuse.test.ts). Holds `sockets`
 * WebSockets to `url`, sends each a subscribe with a new filter every
 * `everyMs`, reopens a socket 100 ms after it is closed, and stops when its
 * stdin closes, printing one JSON line: {sent, closeCodes}.
 *
 * Usage: node tests/helpers/live-abuser.ts <ws-url> <bearer> <sockets> <everyMs>
 */
const [url, bearer, socketsArg, everyArg] = process.argv.slice(2)
const sockets = Number(socketsArg)
const everyMs = Number(everyArg)
let running = true
let sent = 0
let filter = 0
const closeCodes: number[] = []
const open = new Set<WebSocket>()

async function slot() {
  while (running) {
    const ws = new WebSocket(url!, { headers: { authorization: `Bearer ${bearer}` } } as never)
    open.add(ws)
    const timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return
      filter++
      sent++
      ws.send(
        JSON.stringify({
          type: 'subscribe',
          filters: { range: filter % 2 ? '7d' : '24h', tags: `t${filter}` },
        }),
      )
    }, everyMs)
    const code = await new Promise<number>((resolve) => {
      ws.onclose = (e) => resolve(e.code)
    })
    clearInterval(timer)
    open.delete(ws)
    closeCodes.push(code)
    // Reported as it happens, so the test can wait for the server's 4429 instead of guessing a duration.
    process.stdout.write(`close ${code}\n`)
    if (running) await new Promise((r) => setTimeout(r, 100))
  }
}

const slots = Array.from({ length: sockets }, () => slot())
process.stdout.write('started\n')
process.stdin.resume()
process.stdin.on('end', async () => {
  running = false
  for (const ws of open) ws.close()
  await Promise.all(slots)
  process.stdout.write(`${JSON.stringify({ sent, closeCodes })}\n`)
  process.exit(0)
})
