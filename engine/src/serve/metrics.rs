//! The server's metrics in Prometheus text format, at `GET /metrics` on `--metrics ADDR`:
//! requests by outcome, tokens, batch sizes, queue depth, latency, bytes each way, and the
//! budget each client has used (read from the durable state at every scrape).

use super::state::Store;
use anyhow::{Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub adapter: String,
    /// ok, or the gRPC status code's name.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    /// in (requests, keys) or out (replies).
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub client: String,
    pub adapter: String,
    pub layer: String,
    pub module: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Outcome, Counter>,
    pub tokens: Counter,
    pub batch_tokens: Histogram,
    pub queue_tokens: Gauge,
    pub request_seconds: Histogram,
    pub queue_seconds: Histogram,
    pub bytes: Family<Direction, Counter>,
    pub registrations: Counter,
    /// Key sets loaded from the store into an adapter's memory (after a restart, an
    /// eviction, or a registration through another replica).
    pub key_loads: Counter,
    pub resident_key_sets: Gauge,
    /// One group commit of budget charges in the store.
    pub charge_seconds: Histogram,
    pub sessions: Gauge,
    budget_used: Family<BudgetLabels, Gauge>,
    /// Batches by their exact size in tokens (the histogram's buckets are powers of two).
    pub batch_sizes: std::sync::Mutex<std::collections::BTreeMap<usize, u64>>,
    /// The charges' commits, exactly (for `bench serve`).
    pub charge_time: std::sync::Mutex<ChargeTime>,
}

/// Budget charges committed, in how many group commits, and the commits' total time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChargeTime {
    pub charges: u64,
    pub commits: u64,
    pub seconds: f64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("helora");
        let requests = Family::<Outcome, Counter>::default();
        let tokens = Counter::default();
        let batch_tokens = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let queue_tokens = Gauge::default();
        // 1 ms … 65 s.
        let request_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let queue_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 17));
        let bytes = Family::<Direction, Counter>::default();
        let registrations = Counter::default();
        let key_loads = Counter::default();
        let resident_key_sets = Gauge::default();
        // 10 µs … 0.65 s.
        let charge_seconds = Histogram::new(exponential_buckets(0.00001, 2.0, 17));
        let sessions = Gauge::default();
        let budget_used = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "requests",
            "Site requests answered, by outcome",
            requests.clone(),
        );
        registry.register("tokens", "Tokens evaluated", tokens.clone());
        registry.register(
            "batch_tokens",
            "Tokens per evaluated batch",
            batch_tokens.clone(),
        );
        registry.register(
            "queue_tokens",
            "Tokens waiting in the queues",
            queue_tokens.clone(),
        );
        registry.register(
            "request_seconds",
            "Time from a request's arrival to its reply",
            request_seconds.clone(),
        );
        registry.register(
            "queue_seconds",
            "Time a request waited for its batch",
            queue_seconds.clone(),
        );
        registry.register(
            "bytes",
            "Payload bytes (ciphertexts and keys)",
            bytes.clone(),
        );
        registry.register(
            "registrations",
            "Key sets registered",
            registrations.clone(),
        );
        registry.register(
            "key_loads",
            "Key sets loaded from the state into memory",
            key_loads.clone(),
        );
        registry.register(
            "resident_key_sets",
            "Key sets held in memory, all adapters",
            resident_key_sets.clone(),
        );
        registry.register(
            "charge_seconds",
            "One group commit of budget charges in the state",
            charge_seconds.clone(),
        );
        registry.register("sessions", "Open generation sessions", sessions.clone());
        registry.register(
            "budget_used",
            "PLL queries used per client and projection",
            budget_used.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            tokens,
            batch_tokens,
            queue_tokens,
            request_seconds,
            queue_seconds,
            bytes,
            registrations,
            key_loads,
            resident_key_sets,
            charge_seconds,
            sessions,
            budget_used,
            batch_sizes: Default::default(),
            charge_time: Default::default(),
        })
    }

    pub fn count(&self, adapter: &str, outcome: &str) {
        self.requests
            .get_or_create(&Outcome {
                adapter: adapter.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn add_bytes(&self, direction: &str, bytes: usize) {
        self.bytes
            .get_or_create(&Direction {
                direction: direction.to_string(),
            })
            .inc_by(bytes as u64);
    }

    /// The text exposition, budgets refreshed from `store`.
    pub async fn render(&self, store: &dyn Store) -> Result<String> {
        for (client, adapter, layer, module, used) in store.usage().await? {
            self.budget_used
                .get_or_create(&BudgetLabels {
                    client,
                    adapter,
                    layer: layer.to_string(),
                    module,
                })
                .set(i64::try_from(used).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .context("encoding the metrics")?;
        Ok(text)
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            let store = store.clone();
            async move {
                match metrics.render(store.as_ref()).await {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(e) => {
                        tracing::error!("metrics: {e:#}");
                        (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
                    }
                }
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving /metrics")
}
