/**
 * Attribution header values as text. Node hands header bytes over as latin1,
 * so UTF-8 sent by clients (`x-project: café`) arrives as mojibake; it is
 * re-read as UTF-8 when the bytes are valid UTF-8, else kept as latin1. Control
 * characters and Unicode bidi controls (which can make a stored label display
 * as something else, "Trojan Source") are removed.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is stripped
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export function headerText(raw: string): string {
  let text = raw
  const bytes = Buffer.from(raw, 'latin1')
  // Only a latin1 string (what Node gives) with a byte above 0x7f can be misread UTF-8.
  if (/[\u0080-\u00ff]/.test(raw) && bytes.toString('latin1') === raw) {
    const utf8 = bytes.toString('utf8')
    // A round trip proves the bytes were valid UTF-8 (invalid ones become U+FFFD).
    if (Buffer.from(utf8, 'utf8').equals(bytes)) text = utf8
  }
  return text.replace(UNSAFE, '')
}
