/**
 * Markers of a stream's final event: OpenAI chat (`data: [DONE]`), Anthropic
 * (`message_stop`), the Responses API (`response.completed` and its failed /
 * incomplete siblings). The gateway holds a chunk carrying one back until the
 * request's usage row is in the journal, so a client that acts on the final
 * event (not only on the end of the body) has been counted first. A marker
 * inside generated text only makes that chunk wait too: harmless.
 */
const MARKERS = ['[DONE]', 'message_stop', 'response.completed', 'response.failed', 'response.incomplete']

export function endsStream(chunk: Buffer): boolean {
  for (const m of MARKERS) if (chunk.includes(m)) return true
  return false
}
