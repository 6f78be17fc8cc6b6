//! Export of a cache's statistics through the [`metrics`] facade (cargo
//! feature `metrics`), so that `metrics-exporter-prometheus` or any other
//! recorder serves them.
//!
//! [`MetricsReporter::report`] takes a [`Stats`] snapshot and the load-time
//! [`Histogram`] and emits, each labelled `cache = <name>`:
//!
//! | metric | kind | from |
//! |---|---|---|
//! | `larder_hits_total`, `larder_misses_total`, `larder_inserts_total`, `larder_updates_total`, `larder_evictions_total`, `larder_evicted_weight_total`, `larder_removals_total`, `larder_rejections_total`, `larder_expirations_total`, `larder_loads_total`, `larder_load_failures_total`, `larder_negative_hits_total`, `larder_refreshes_total`, `larder_refresh_failures_total`, `larder_filtered_total`, `larder_load_timeouts_total`, `larder_early_refreshes_total`, `larder_stale_served_total` | counter (set to the snapshot's value) | the `Stats` field of the same name |
//! | `larder_load_seconds_total` | gauge | `total_load_time` |
//! | `larder_hit_ratio` | gauge | [`Stats::hit_ratio`] |
//! | `larder_load_time_seconds{quantile="0.5" / "0.9" / "0.99" / "1"}` | gauge | the cache's own load-time percentiles (p50, p90, p99, max since the cache was built) |
//! | `larder_load_duration_seconds` | histogram | every load since the previous report, replayed |
//!
//! The counters are absolute (the facade's `Counter::absolute`), so a
//! report is idempotent and reports may come from any thread at any
//! interval. The histogram is fed the difference between this report's
//! load-time histogram and the previous one's: one `record_many` call per
//! non-empty bucket, each at the bucket's reported value (within
//! [`Histogram::RELATIVE_ERROR`] of the loads it stands for). A recorder
//! may store each replayed value until its next upkeep (the Prometheus
//! exporter does), so report about as often as the recorder runs upkeep.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::histogram::Histogram;
use crate::stats::Stats;

/// Emits a cache's statistics through the `metrics` facade, labelled with
/// the cache's name; remembers the last load-time histogram it reported so
/// the facade's histogram gets each load once.
///
/// # Examples
///
/// ```
/// use larder::{Cache, Histogram, MetricsReporter};
///
/// let cache: Cache<u64, String> = Cache::new(1000);
/// let mut reporter = MetricsReporter::new("products");
/// cache.get_with(1, || "one".to_string());
/// // With a recorder installed (e.g. metrics-exporter-prometheus), on a
/// // timer:
/// reporter.report(&cache.stats(), &Histogram::default());
/// ```
#[derive(Debug)]
pub struct MetricsReporter {
    name: String,
    last: Histogram,
    described: bool,
}

impl MetricsReporter {
    /// A reporter whose metrics carry the label `cache = name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            last: Histogram::default(),
            described: false,
        }
    }

    /// The label value the metrics carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Emits `stats` and the loads of `load_times` recorded since the
    /// previous report (`load_times` is the cache's cumulative histogram;
    /// one that went backwards, as after a swapped argument, replays
    /// nothing rather than panicking).
    pub fn report(&mut self, stats: &Stats, load_times: &Histogram) {
        if !self.described {
            describe();
            self.described = true;
        }
        let name = self.name.clone();
        let counters: [(&'static str, u64); 18] = [
            ("larder_hits_total", stats.hits),
            ("larder_misses_total", stats.misses),
            ("larder_inserts_total", stats.inserts),
            ("larder_updates_total", stats.updates),
            ("larder_evictions_total", stats.evictions),
            ("larder_evicted_weight_total", stats.evicted_weight),
            ("larder_removals_total", stats.removals),
            ("larder_rejections_total", stats.rejections),
            ("larder_expirations_total", stats.expirations),
            ("larder_loads_total", stats.loads),
            ("larder_load_failures_total", stats.load_failures),
            ("larder_negative_hits_total", stats.negative_hits),
            ("larder_refreshes_total", stats.refreshes),
            ("larder_refresh_failures_total", stats.refresh_failures),
            ("larder_filtered_total", stats.filtered),
            ("larder_load_timeouts_total", stats.load_timeouts),
            ("larder_early_refreshes_total", stats.early_refreshes),
            ("larder_stale_served_total", stats.stale_served),
        ];
        for (metric, value) in counters {
            counter!(metric, "cache" => name.clone()).absolute(value);
        }
        gauge!("larder_load_seconds_total", "cache" => name.clone())
            .set(stats.total_load_time.as_secs_f64());
        gauge!("larder_hit_ratio", "cache" => name.clone()).set(stats.hit_ratio());
        let quantiles: [(&'static str, Duration); 4] = [
            ("0.5", stats.load_time_p50),
            ("0.9", stats.load_time_p90),
            ("0.99", stats.load_time_p99),
            ("1", stats.load_time_max),
        ];
        for (q, d) in quantiles {
            gauge!("larder_load_time_seconds", "cache" => name.clone(), "quantile" => q)
                .set(d.as_secs_f64());
        }
        let new = load_times.since(&self.last);
        if !new.is_empty() {
            let h = histogram!("larder_load_duration_seconds", "cache" => name);
            for (_, value, count) in new.buckets() {
                h.record_many(
                    value.as_secs_f64(),
                    usize::try_from(count).unwrap_or(usize::MAX),
                );
            }
        }
        if load_times.count() >= self.last.count() {
            self.last = load_times.clone();
        }
    }
}

/// The HELP text of every metric, once per reporter.
fn describe() {
    describe_counter!("larder_hits_total", "Lookups that found a live value.");
    describe_counter!(
        "larder_misses_total",
        "Lookups that found nothing or an expired entry."
    );
    describe_counter!(
        "larder_inserts_total",
        "Entries stored under an absent key."
    );
    describe_counter!(
        "larder_updates_total",
        "Values replaced under a present key."
    );
    describe_counter!(
        "larder_evictions_total",
        "Entries removed by the eviction policy."
    );
    describe_counter!(
        "larder_evicted_weight_total",
        "Total weight of evicted entries."
    );
    describe_counter!("larder_removals_total", "Entries removed explicitly.");
    describe_counter!(
        "larder_rejections_total",
        "Values heavier than the cache's capacity."
    );
    describe_counter!(
        "larder_expirations_total",
        "Entries whose time to live or idle ran out."
    );
    describe_counter!("larder_loads_total", "Loader calls that completed.");
    describe_counter!(
        "larder_load_failures_total",
        "Loader calls that returned an error."
    );
    describe_counter!(
        "larder_negative_hits_total",
        "Lookups answered by a remembered absence."
    );
    describe_counter!("larder_refreshes_total", "Background refreshes that ran.");
    describe_counter!(
        "larder_refresh_failures_total",
        "Refreshes that failed; the old value was kept."
    );
    describe_counter!(
        "larder_filtered_total",
        "Lookups the key filter answered absent without a load."
    );
    describe_counter!(
        "larder_load_timeouts_total",
        "Callers that gave up waiting for another caller's load."
    );
    describe_counter!(
        "larder_early_refreshes_total",
        "Reloads started before expiry (early refresh)."
    );
    describe_counter!(
        "larder_stale_served_total",
        "Reads answered with an expired value because its reload failed."
    );
    describe_gauge!(
        "larder_load_seconds_total",
        "Seconds spent in loader calls."
    );
    describe_gauge!(
        "larder_hit_ratio",
        "hits / (hits + misses) since the cache was built."
    );
    describe_gauge!(
        "larder_load_time_seconds",
        "Load-time percentiles since the cache was built."
    );
    describe_histogram!("larder_load_duration_seconds", "Loader call durations.");
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::histogram::AtomicHistogram;
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// The value of the exposition line starting with `prefix`.
    fn value(page: &str, prefix: &str) -> Option<f64> {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn a_report_renders_as_prometheus_text() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0])
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        let times = AtomicHistogram::new();
        let mut reporter = MetricsReporter::new("products");
        let mut stats = Stats {
            hits: 30,
            misses: 10,
            loads: 10,
            load_failures: 1,
            total_load_time: Duration::from_millis(50),
            ..Stats::default()
        };
        for _ in 0..9 {
            times.record(Duration::from_millis(2));
        }
        times.record(Duration::from_millis(32));
        stats.set_load_times(&times.snapshot());
        metrics::with_local_recorder(&recorder, || {
            reporter.report(&stats, &times.snapshot());
            // A second report with nothing new replays nothing.
            reporter.report(&stats, &times.snapshot());
        });
        let page = handle.render();
        let l = r#"{cache="products"}"#;
        assert_eq!(value(&page, &format!("larder_hits_total{l}")), Some(30.0));
        assert_eq!(value(&page, &format!("larder_misses_total{l}")), Some(10.0));
        assert_eq!(
            value(&page, &format!("larder_load_failures_total{l}")),
            Some(1.0)
        );
        assert_eq!(value(&page, &format!("larder_hit_ratio{l}")), Some(0.75));
        assert_eq!(
            value(&page, &format!("larder_load_seconds_total{l}")),
            Some(0.05)
        );
        let max = value(
            &page,
            r#"larder_load_time_seconds{cache="products",quantile="1"}"#,
        );
        assert_eq!(max, Some(0.032));
        let p50 = value(
            &page,
            r#"larder_load_time_seconds{cache="products",quantile="0.5"}"#,
        )
        .expect("p50");
        assert!(
            (p50 - 0.002).abs() <= 0.002 * Histogram::RELATIVE_ERROR,
            "{p50}"
        );
        // Each load once in the histogram, in the right buckets.
        assert_eq!(
            value(&page, &format!("larder_load_duration_seconds_count{l}")),
            Some(10.0)
        );
        let le = |b: &str| {
            value(
                &page,
                &format!(r#"larder_load_duration_seconds_bucket{{cache="products",le="{b}"}}"#),
            )
        };
        assert_eq!(
            (le("0.001"), le("0.01"), le("0.1")),
            (Some(0.0), Some(9.0), Some(10.0))
        );
        assert!(page.contains("# HELP larder_hits_total"));

        // Later loads: only they are added.
        times.record(Duration::from_millis(500));
        stats.loads = 11;
        metrics::with_local_recorder(&recorder, || reporter.report(&stats, &times.snapshot()));
        let page = handle.render();
        assert_eq!(
            value(&page, &format!("larder_load_duration_seconds_count{l}")),
            Some(11.0)
        );
        assert_eq!(value(&page, &format!("larder_loads_total{l}")), Some(11.0));
        // A histogram that went backwards replays nothing and panics not.
        metrics::with_local_recorder(&recorder, || {
            reporter.report(&stats, &Histogram::default());
        });
        let page = handle.render();
        assert_eq!(
            value(&page, &format!("larder_load_duration_seconds_count{l}")),
            Some(11.0)
        );
    }
}
