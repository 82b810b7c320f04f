/**
 * Id of the series that sums everything beyond `splitLimit` in /api/series.
 * A value both sides compare against, in its own module so the dashboard can
 * import it without pulling zod into its bundle.
 */
export const OTHER_SERIES_ID = '__other__'
