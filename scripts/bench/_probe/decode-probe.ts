import { encodeBatch, decodeBatch } from '../../../services/src/worker/batch-codec.ts'
import { usageRowSchema } from '../../../services/src/core/usage-row.ts'
import { encodeRows } from '../../../services/src/core/warehouse.ts'
import { createCatalogue } from '../../../services/src/demo/usage-catalogue.ts'
import { generateUsage } from '../../../services/src/demo/usage-generator.ts'
const catalogue = createCatalogue({ seed: 1 })
const now = Date.now()
const rows = generateUsage({ catalogue, seed: 7, from: now - 25_000, to: now, rows: 50_000 })
const batch = { batchId: 'b1', createdAt: now, rows }
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now(); const enc = encodeBatch(batch); const te = performance.now() - t
  t = performance.now(); const dec = decodeBatch(enc); const td = performance.now() - t
  t = performance.now(); let ok = 0; for (const r of dec.rows) if (usageRowSchema.safeParse(r).success) ok++; const tz = performance.now() - t
  t = performance.now(); const e = encodeRows(dec.rows as object[]); const ts = performance.now() - t
  t = performance.now(); const copy = rows.map((r) => ({ ...r, batch_id: 'x' })); const tc = performance.now() - t
  console.log(`per row µs: encode(gzip json) ${(te*1000/5e4).toFixed(2)} decode ${(td*1000/5e4).toFixed(2)} zod ${(tz*1000/5e4).toFixed(2)} serialise-compact ${(ts*1000/5e4).toFixed(2)} recorder-copy ${(tc*1000/5e4).toFixed(2)}  ${ok} ${e.format} ${copy.length}`)
}
