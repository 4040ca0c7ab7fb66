//! Prometheus metrics (`GET /metrics` on the admin API), kept with
//! prometheus-client: exchanges by rule, action and verdict, upstream
//! latency, open client connections, leaf certificates cached, and how far
//! the recorder is behind. Counters are bumped by the recorder thread as it
//! records, so they always equal the recording's counts.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::record::Record;

/// The labels of `authfault_exchanges_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    /// The owning rule, `-` when none.
    pub rule: Cow<'static, str>,
    /// Its action, `-` when none. Like the verdict, a name known at build
    /// time: counting an exchange allocates only for its rule's name.
    pub action: Cow<'static, str>,
    pub verdict: Cow<'static, str>,
}

/// Every metric authfault exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    exchanges: Family<ExchangeLabels, Counter>,
    upstream_seconds: Histogram,
    /// Client connections open now.
    pub connections: Gauge,
    /// Hosts with a cached leaf certificate.
    pub leaves: Gauge,
    /// Exchanges finished but not yet recorded.
    pub recording_lag: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `authfault_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authfault");
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "exchanges",
            "Exchanges recorded, by owning rule, action and verdict",
            exchanges.clone(),
        );
        // 1 ms to about 33 s.
        let upstream_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16),
        );
        registry.register(
            "upstream_latency_seconds",
            "From sending a request upstream to its response headers",
            upstream_seconds.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "client_connections",
            "Client connections open now",
            connections.clone(),
        );
        let leaves = Gauge::default();
        registry.register(
            "leaf_certificates",
            "Hosts with a cached leaf certificate",
            leaves.clone(),
        );
        let recording_lag = Gauge::default();
        registry.register(
            "recording_lag_exchanges",
            "Exchanges finished but not yet recorded",
            recording_lag.clone(),
        );
        Self {
            registry,
            exchanges,
            upstream_seconds,
            connections,
            leaves,
            recording_lag,
        }
    }

    /// Counts one recorded exchange.
    pub fn record(&self, record: &Record) {
        let labels = ExchangeLabels {
            rule: record.rule.clone().map_or(Cow::Borrowed("-"), Cow::Owned),
            action: record.action.clone().unwrap_or(Cow::Borrowed("-")),
            verdict: Cow::Borrowed(record.verdict.as_str()),
        };
        self.exchanges.get_or_create(&labels).inc();
        if let Some(ms) = record.timing.upstream_ms {
            self.upstream_seconds.observe(ms / 1000.0);
        }
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
