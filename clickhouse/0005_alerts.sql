-- Alerts from the anomaly detector and budget thresholds. One row per
-- (kind, subject, window, level): the detector runs every minute on every
-- instance, and the key makes a repeat of the same finding collapse into one
-- alert (ReplacingMergeTree + FINAL on read; the alert_id, derived from the
-- key, is also the insert deduplication token so two instances racing insert once).
-- A later version of the row (same key, newer updated_at) records the webhook delivery.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id      String,
    -- spike | forecast | runaway_day | threshold
    kind          LowCardinality(String),
    -- key | budget
    subject_type  LowCardinality(String),
    subject_id    String,
    -- the hour, day or budget period the finding is about
    window_start  DateTime('UTC'),
    -- threshold percentage for kind = threshold, else 0
    level         UInt8,
    severity      LowCardinality(String),
    message       String,
    value_usd     Decimal(18, 9),
    baseline_usd  Decimal(18, 9),
    -- JSON object with the numbers behind the finding (ids and amounts only)
    details       String,
    created_at    DateTime64(3, 'UTC'),
    notified_at   Nullable(DateTime64(3, 'UTC')),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (kind, subject_type, subject_id, window_start, level)
SETTINGS non_replicated_deduplication_window = 10000;
