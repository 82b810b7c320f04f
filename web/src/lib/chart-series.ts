/**
 * What TimeArea and TimeBars hand layerchart: one row per bucket with each
 * series' value under `s0`, `s1`, …, and one accessor per series. Series keys
 * can be any model or team name; the chart only sees s0, s1, … so names with
 * dots or spaces never become accessor paths.
 */
export type ChartRow = Record<string, number | string | Date>

interface Values {
  label: string
  color: string
  values: number[]
}

/** One row per bucket: `at(bucket, i)` gives the x fields, the series fill s0, s1, …. */
export function chartRows(buckets: string[], series: Values[], at: (bucket: string, i: number) => ChartRow) {
  return buckets.map((b, i) => {
    const row = at(b, i)
    series.forEach((s, k) => {
      row[`s${k}`] = s.values[i] ?? 0
    })
    return row
  })
}

/** The chart's series, reading s0, s1, … from the rows. */
export function chartSeries(series: Values[]) {
  return series.map((s, k) => ({
    key: `s${k}`,
    label: s.label,
    color: s.color,
    value: (d: ChartRow) => Number(d[`s${k}`] ?? 0),
  }))
}
