//! OpenTelemetry: every turn, tool call and wait as spans, and what turns
//! cost and take as metrics, exported over OTLP (HTTP/protobuf) when a
//! collector is configured — by the standard `OTEL_*` environment variables
//! or `--otel-endpoint` — and counted on `/metrics` always.
//!
//! Nothing here is on the event path: spans are built by a follower of the
//! log ([`spans::Turns`]) and handed to a bounded queue; a full queue drops
//! the span and counts it (`tether_otel_spans_dropped_total`), so a collector
//! that is down or slow costs spans, never events. The exporters run on
//! their own threads with reqwest's blocking client.

mod context;
pub mod spans;
pub mod stats;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;

pub use context::{turn_trace, TRACEPARENT};
pub use stats::Stats;

/// The trace of each session's latest turn, by session id (webhook
/// deliveries of a session's events send it as `traceparent`).
pub type TurnTraces = Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, tether_protocol::TurnTrace>>>;

/// How long the last export may take at shutdown.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// `--otel-endpoint` and `--otel-capture-content`, resolved.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// The collector's base URL (`/v1/traces` and `/v1/metrics` are added);
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` when the flag is absent.
    pub endpoint: Option<String>,
    /// Prompts, outputs, tool arguments and results as span attributes.
    pub capture_content: bool,
}

/// Where each signal goes: the signal's own variable, else the base URL
/// with the signal's path, as the OTLP exporter specification says.
fn signal_endpoint(base: Option<&str>, signal_var: &str, path: &str) -> Option<String> {
    let own = std::env::var(signal_var).ok().filter(|v| !v.trim().is_empty());
    own.or_else(|| base.map(|b| format!("{}/{path}", b.trim_end_matches('/'))))
}

/// Checks the configuration before the server starts: a protocol tether
/// does not speak is refused with what to do instead.
pub fn check(config: &TelemetryConfig) -> Result<(), String> {
    if !enabled(config) {
        return Ok(());
    }
    for var in
        ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"]
    {
        if let Ok(p) = std::env::var(var) {
            if !p.is_empty() && p != "http/protobuf" {
                return Err(format!(
                    "{var}={p} is not supported: tether exports OTLP over HTTP with protobuf (http/protobuf). \
                     Unset it and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (usually 4318)."
                ));
            }
        }
    }
    Ok(())
}

/// Whether a collector is configured (and the SDK not disabled).
pub fn enabled(config: &TelemetryConfig) -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let any = config.endpoint.is_some()
        || ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    !disabled && any
}

/// Who this server is, for the collector: `service.*`, the store and the
/// server start, and the Sprite's name when it runs in one.
fn resource(store_id: &str, boot_id: &str, sprite: Option<String>) -> Resource {
    let mut b = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        b = b.with_service_name("tether");
    }
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", boot_id.to_string()),
        KeyValue::new("tether.store.id", store_id.to_string()),
    ];
    if let Some(name) = sprite {
        attrs.push(KeyValue::new("tether.sprite.name", name));
    }
    b.with_attributes(attrs).build()
}

/// The exporting half, when configured.
pub struct Exporters {
    meters: Option<SdkMeterProvider>,
    spans: Option<std::thread::JoinHandle<()>>,
    /// `None` on it ends the span exporter's thread.
    stop: Option<SyncSender<Option<SpanData>>>,
}

/// The span queue's producer: drops when full, and counts it.
struct Queue {
    tx: SyncSender<Option<SpanData>>,
    stats: Arc<Stats>,
}

impl spans::SpanSink for Queue {
    fn send(&self, span: SpanData) {
        match self.tx.try_send(Some(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.spans_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The span exporter's thread: batches of up to `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
/// spans, sent when full or every `OTEL_BSP_SCHEDULE_DELAY` ms, until the queue closes.
fn export_spans(
    rx: Receiver<Option<SpanData>>,
    mut exporter: opentelemetry_otlp::SpanExporter,
    resource: Resource,
    stats: Arc<Stats>,
) {
    exporter.set_resource(&resource);
    let batch_size = env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize;
    let delay = Duration::from_millis(env_number("OTEL_BSP_SCHEDULE_DELAY", 5000));
    let mut batch = Vec::with_capacity(batch_size);
    let mut due = Instant::now() + delay;
    loop {
        let closed = match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(Some(span)) => {
                batch.push(span);
                false
            }
            Ok(None) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if batch.len() >= batch_size || Instant::now() >= due || (closed && !batch.is_empty()) {
            let n = batch.len() as u64;
            if n > 0 {
                match futures_executor::block_on(exporter.export(std::mem::take(&mut batch))) {
                    Ok(()) => {
                        stats.spans_exported.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.export_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, spans = n, "the OTLP collector did not take a batch of spans");
                    }
                }
            }
            due = Instant::now() + delay;
        }
        if closed {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Gauges read when the metrics are collected.
pub struct Gauges {
    pub sse_clients: Box<dyn Fn() -> i64 + Send + Sync>,
    pub agent_processes: Box<dyn Fn() -> i64 + Send + Sync>,
    pub store_stalled: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Starts following the log for the metrics and, when a collector is
/// configured, the exporters. Returns what to stop at shutdown.
pub fn start(
    config: &TelemetryConfig,
    store: crate::store::Store,
    stats: Arc<Stats>,
    boot_id: &str,
    sprite: Option<String>,
    gauges: Gauges,
) -> Exporters {
    let mut exporters = Exporters { meters: None, spans: None, stop: None };
    if !enabled(config) {
        tokio::spawn(spans::Turns::new(store, stats, None, None, false).run());
        return exporters;
    }
    let base = config
        .endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|b| !b.trim().is_empty());
    let traces_url = signal_endpoint(base.as_deref(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "v1/traces");
    let metrics_url = signal_endpoint(base.as_deref(), "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics");
    let resource = resource(store.store_id(), boot_id, sprite);
    // reqwest's blocking client may not be built or dropped on the runtime's threads.
    let built = std::thread::scope(|s| {
        s.spawn(|| {
            let spans = traces_url
                .map(|url| opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(url).build());
            let metrics = metrics_url
                .map(|url| opentelemetry_otlp::MetricExporter::builder().with_http().with_endpoint(url).build());
            (spans, metrics)
        })
        .join()
    });
    let Ok((span_exporter, metric_exporter)) = built else {
        tracing::warn!("OpenTelemetry: the exporters could not be built; nothing is exported");
        tokio::spawn(spans::Turns::new(store, stats, None, None, false).run());
        return exporters;
    };
    if let Some(exporter) = metric_exporter {
        match exporter {
            Ok(exporter) => {
                let reader = PeriodicReader::builder(exporter).build();
                let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource.clone()).build();
                let meter = provider.meter("tether");
                stats.export_to(stats::Instruments::new(&meter));
                let Gauges { sse_clients, agent_processes, store_stalled } = gauges;
                let _ = meter
                    .i64_observable_gauge("tether.sse.clients")
                    .with_description("Open event streams (SSE and WebSocket)")
                    .with_callback(move |o| o.observe(sse_clients(), &[]))
                    .build();
                let _ = meter
                    .i64_observable_gauge("tether.agent.processes")
                    .with_description("Running agent processes")
                    .with_callback(move |o| o.observe(agent_processes(), &[]))
                    .build();
                let _ = meter
                    .i64_observable_gauge("tether.store.stalled")
                    .with_description("1 while the store cannot commit")
                    .with_callback(move |o| o.observe(store_stalled() as i64, &[]))
                    .build();
                exporters.meters = Some(provider);
            }
            Err(e) => tracing::warn!(error = %e, "OpenTelemetry: no metrics exporter"),
        }
    }
    let mut sink: Option<Box<dyn spans::SpanSink>> = None;
    match span_exporter {
        Some(Ok(exporter)) => {
            let (tx, rx) = sync_channel(env_number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize);
            let thread_stats = stats.clone();
            let resource = resource.clone();
            let handle = std::thread::Builder::new()
                .name("otel-spans".into())
                .spawn(move || export_spans(rx, exporter, resource, thread_stats));
            match handle {
                Ok(h) => {
                    exporters.spans = Some(h);
                    exporters.stop = Some(tx.clone());
                    sink = Some(Box::new(Queue { tx, stats: stats.clone() }));
                }
                Err(e) => tracing::warn!(error = %e, "OpenTelemetry: cannot start the span exporter"),
            }
        }
        Some(Err(e)) => tracing::warn!(error = %e, "OpenTelemetry: no span exporter"),
        None => {}
    }
    let sampler = opentelemetry_sdk::trace::Config::default().sampler;
    tracing::info!(content = config.capture_content, "exporting OpenTelemetry traces and metrics over OTLP/HTTP");
    tokio::spawn(spans::Turns::new(store, stats, sink, Some(sampler), config.capture_content).run());
    exporters
}

impl Exporters {
    /// Sends what is queued and stops, within a few seconds whatever the
    /// collector does.
    pub async fn shutdown(mut self) {
        let meters = self.meters.take();
        let spans = self.spans.take();
        let stop = self.stop.take();
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(m) = meters {
                let _ = m.shutdown();
            }
            if let (Some(stop), Some(h)) = (stop, spans) {
                if stop.send(None).is_ok() {
                    let _ = h.join();
                }
            }
        });
        let _ = tokio::time::timeout(SHUTDOWN_LIMIT, flush).await;
    }
}
