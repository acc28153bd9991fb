//! [`Collector`]: an OTLP/HTTP receiver on 127.0.0.1 for the OpenTelemetry
//! tests, decoding what tether exports with the protocol's own types
//! (`opentelemetry-proto`, protobuf). It answers as the OTLP/HTTP
//! specification has a receiver answer (opentelemetry-proto,
//! `docs/specification.md`, "OTLP/HTTP Response"; the Collector's
//! `otlpreceiver` does so): `200` with an `Export*ServiceResponse` in the
//! request's encoding (`application/x-protobuf`) for a request it took,
//! `400` for a body it cannot decode, `404` for another path. It can also be slow
//! (answers each request only after a delay, as an overloaded collector
//! does). [`refusing_url`] is a collector that is down. Waits are on a change
//! counter with a deadline, never sleeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use tokio::sync::watch;

/// An attribute's value, as text (arrays as JSON).
fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| text(&Some(v.clone()))).collect();
            serde_json::to_string(&items).unwrap_or_default()
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One span the collector received.
#[derive(Debug, Clone)]
pub struct SpanSeen {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The resource it came with.
    pub resource: BTreeMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub events: Vec<String>,
}

impl SpanSeen {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One data point of a metric: its attributes and value (a histogram's count).
#[derive(Debug, Clone)]
pub struct PointSeen {
    pub metric: String,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    points: Vec<PointSeen>,
    /// Bodies it could not decode, with why.
    rejected: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    changes: watch::Sender<u64>,
    delay: Option<Duration>,
}

/// An OTLP/HTTP collector; see the module doc.
pub struct Collector {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A base URL where no collector listens (connections are refused).
pub async fn refusing_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
}

/// A request's body decoded, after the collector's delay; a body that is
/// not a `R` is recorded and answered 400.
async fn decode<R: Message + Default>(s: &Shared, body: Bytes) -> Result<R, Response> {
    if let Some(d) = s.delay {
        tokio::time::sleep(d).await;
    }
    R::decode(body).map_err(|e| {
        s.seen.lock().unwrap().rejected.push(e.to_string());
        (StatusCode::BAD_REQUEST, e.to_string()).into_response()
    })
}

async fn traces(State(s): State<Shared>, body: Bytes) -> Response {
    let req: ExportTraceServiceRequest = match decode(&s, body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    {
        let mut seen = s.seen.lock().unwrap();
        for rs in req.resource_spans {
            let resource = rs.resource.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let status = span.status.clone().unwrap_or_default();
                    seen.spans.push(SpanSeen {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        attributes: attrs(&span.attributes),
                        resource: resource.clone(),
                        status_code: status.code,
                        status_message: status.message,
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano,
                        events: span.events.iter().map(|e| e.name.clone()).collect(),
                    });
                }
            }
        }
    }
    s.changes.send_modify(|n| *n += 1);
    protobuf(ExportTraceServiceResponse::default().encode_to_vec())
}

async fn metrics(State(s): State<Shared>, body: Bytes) -> Response {
    let req: ExportMetricsServiceRequest = match decode(&s, body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    {
        let mut seen = s.seen.lock().unwrap();
        for rm in req.resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let name = m.name.clone();
                    let mut push = |kvs: &[KeyValue], value: f64| {
                        seen.points.push(PointSeen { metric: name.clone(), attributes: attrs(kvs), value })
                    };
                    let number = |v: &Option<number_data_point::Value>| match v {
                        Some(number_data_point::Value::AsDouble(d)) => *d,
                        Some(number_data_point::Value::AsInt(i)) => *i as f64,
                        None => f64::NAN,
                    };
                    match &m.data {
                        Some(metric::Data::Sum(s)) => {
                            s.data_points.iter().for_each(|p| push(&p.attributes, number(&p.value)))
                        }
                        Some(metric::Data::Gauge(g)) => {
                            g.data_points.iter().for_each(|p| push(&p.attributes, number(&p.value)))
                        }
                        Some(metric::Data::Histogram(h)) => {
                            h.data_points.iter().for_each(|p| push(&p.attributes, p.count as f64))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    s.changes.send_modify(|n| *n += 1);
    protobuf(ExportMetricsServiceResponse::default().encode_to_vec())
}

impl Collector {
    pub async fn start() -> Collector {
        Collector::with_delay(None).await
    }

    /// A collector that answers each request only after `delay`.
    pub async fn slow(delay: Duration) -> Collector {
        Collector::with_delay(Some(delay)).await
    }

    async fn with_delay(delay: Option<Duration>) -> Collector {
        let shared = Shared { seen: Arc::default(), changes: watch::channel(0).0, delay };
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { url, shared, task }
    }

    pub fn spans(&self) -> Vec<SpanSeen> {
        self.shared.seen.lock().unwrap().spans.clone()
    }

    pub fn points(&self) -> Vec<PointSeen> {
        self.shared.seen.lock().unwrap().points.clone()
    }

    /// Bodies it could not decode (none is expected).
    pub fn rejected(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().rejected.clone()
    }

    /// Waits until `ready` holds for what was received, or panics after `deadline` naming `what`.
    pub async fn wait_for(&self, what: &str, deadline: Duration, ready: impl Fn(&[SpanSeen], &[PointSeen]) -> bool) {
        let mut changes = self.shared.changes.subscribe();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            {
                let seen = self.shared.seen.lock().unwrap();
                if ready(&seen.spans, &seen.points) {
                    return;
                }
            }
            match tokio::time::timeout_at(until, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    let seen = self.shared.seen.lock().unwrap();
                    let names: Vec<_> = seen.spans.iter().map(|s| s.name.as_str()).collect();
                    let metrics: std::collections::BTreeSet<_> =
                        seen.points.iter().map(|p| p.metric.as_str()).collect();
                    panic!(
                        "the collector never got {what} within {deadline:?}; spans: {names:?}; metrics: {metrics:?}"
                    );
                }
            }
        }
    }
}
