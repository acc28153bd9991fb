//! What the turns cost and how long things took, counted once for both
//! outlets: `/metrics` (Prometheus text, always) and OTLP (when an exporter
//! is configured, through the OpenTelemetry instruments in [`Instruments`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

/// Bucket bounds of the duration histograms, in seconds: a tool call takes
/// milliseconds to minutes, a person answers in seconds to an hour.
const BUCKETS: [f64; 14] = [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

#[derive(Default, Clone)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Hist {
    fn observe(&mut self, v: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if v <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

/// The OpenTelemetry side of each measure (only when exporting).
pub struct Instruments {
    tokens: Counter<u64>,
    cost: Counter<f64>,
    turn_duration: Histogram<f64>,
    tool_duration: Histogram<f64>,
    permission_wait: Histogram<f64>,
    question_wait: Histogram<f64>,
    events: Counter<u64>,
}

impl Instruments {
    pub fn new(meter: &Meter) -> Instruments {
        Instruments {
            tokens: meter
                .u64_counter("tether.tokens")
                .with_unit("{token}")
                .with_description("Tokens the agents' turns used, by agent, model and type")
                .build(),
            cost: meter
                .f64_counter("tether.cost")
                .with_unit("USD")
                .with_description("What the agents' turns cost, as the agents report it")
                .build(),
            turn_duration: meter
                .f64_histogram("tether.turn.duration")
                .with_unit("s")
                .with_description("Turns, from accepted message to turn.completed")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            tool_duration: meter
                .f64_histogram("tether.tool.duration")
                .with_unit("s")
                .with_description("Tool calls, from item.started to item.completed, by kind and status")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            permission_wait: meter
                .f64_histogram("tether.permission.wait")
                .with_unit("s")
                .with_description("How long permission requests waited for an answer")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            question_wait: meter
                .f64_histogram("tether.question.wait")
                .with_unit("s")
                .with_description("How long questions waited for an answer")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            events: meter
                .u64_counter("tether.events")
                .with_unit("{event}")
                .with_description("Events committed to the store")
                .build(),
        }
    }
}

/// The counts since this server started.
#[derive(Default)]
pub struct Stats {
    tokens: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    cost: Mutex<BTreeMap<(String, String), f64>>,
    turns: Mutex<BTreeMap<(String, &'static str), Hist>>,
    tools: Mutex<BTreeMap<(&'static str, &'static str), Hist>>,
    permission_waits: Mutex<BTreeMap<&'static str, Hist>>,
    question_waits: Mutex<BTreeMap<&'static str, Hist>>,
    events: AtomicU64,
    /// Spans handed to the exporter, exported, and dropped because its queue was full.
    pub spans_queued: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_dropped: AtomicU64,
    /// Export calls (spans or metrics) the collector did not accept.
    pub export_failures: AtomicU64,
    otel: OnceLock<Instruments>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stats {
    /// From now on, every measure is also recorded through `instruments`.
    pub fn export_to(&self, instruments: Instruments) {
        let _ = self.otel.set(instruments);
    }

    pub fn events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
        if let Some(o) = self.otel.get() {
            o.events.add(n, &[]);
        }
    }

    /// A finished turn's usage: tokens by type, and its cost.
    pub fn usage(&self, agent: &str, model: &str, usage: &tether_protocol::Usage) {
        let by_type = [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("reasoning", usage.reasoning_tokens),
        ];
        for (kind, n) in by_type {
            let Some(n) = n.filter(|n| *n > 0) else { continue };
            *lock(&self.tokens).entry((agent.to_string(), model.to_string(), kind)).or_default() += n;
            if let Some(o) = self.otel.get() {
                let attrs = [agent_kv(agent), model_kv(model), KeyValue::new("gen_ai.token.type", kind)];
                o.tokens.add(n, &attrs);
            }
        }
        if let Some(cost) = usage.cost_usd.filter(|c| *c > 0.0) {
            *lock(&self.cost).entry((agent.to_string(), model.to_string())).or_default() += cost;
            if let Some(o) = self.otel.get() {
                o.cost.add(cost, &[agent_kv(agent), model_kv(model)]);
            }
        }
    }

    pub fn turn(&self, agent: &str, stop_reason: &'static str, secs: f64) {
        lock(&self.turns).entry((agent.to_string(), stop_reason)).or_default().observe(secs);
        if let Some(o) = self.otel.get() {
            o.turn_duration.record(secs, &[agent_kv(agent), KeyValue::new("tether.stop_reason", stop_reason)]);
        }
    }

    pub fn tool(&self, kind: &'static str, status: &'static str, secs: f64) {
        lock(&self.tools).entry((kind, status)).or_default().observe(secs);
        if let Some(o) = self.otel.get() {
            let attrs = [KeyValue::new("tether.tool.kind", kind), KeyValue::new("tether.tool.status", status)];
            o.tool_duration.record(secs, &attrs);
        }
    }

    pub fn permission_wait(&self, decision: &'static str, secs: f64) {
        lock(&self.permission_waits).entry(decision).or_default().observe(secs);
        if let Some(o) = self.otel.get() {
            o.permission_wait.record(secs, &[KeyValue::new("tether.permission.decision", decision)]);
        }
    }

    pub fn question_wait(&self, outcome: &'static str, secs: f64) {
        lock(&self.question_waits).entry(outcome).or_default().observe(secs);
        if let Some(o) = self.otel.get() {
            o.question_wait.record(secs, &[KeyValue::new("tether.question.outcome", outcome)]);
        }
    }

    /// The Prometheus text of every family here.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tether_tokens_total Tokens the agents' turns used, by agent, model and type.\n# TYPE tether_tokens_total counter\n");
        for ((agent, model, kind), n) in lock(&self.tokens).iter() {
            let _ = writeln!(
                out,
                "tether_tokens_total{{agent=\"{}\",model=\"{}\",type=\"{kind}\"}} {n}",
                esc(agent),
                esc(model)
            );
        }
        out.push_str("# HELP tether_cost_usd_total What the agents' turns cost in USD, as the agents report it.\n# TYPE tether_cost_usd_total counter\n");
        for ((agent, model), cost) in lock(&self.cost).iter() {
            let _ = writeln!(out, "tether_cost_usd_total{{agent=\"{}\",model=\"{}\"}} {cost}", esc(agent), esc(model));
        }
        let turns: Vec<_> = lock(&self.turns)
            .iter()
            .map(|((a, s), h)| (format!("agent=\"{}\",stop_reason=\"{s}\"", esc(a)), h.clone()))
            .collect();
        histogram(&mut out, "tether_turn_duration_seconds", "Turns, from accepted message to turn.completed.", &turns);
        let tools: Vec<_> =
            lock(&self.tools).iter().map(|((k, s), h)| (format!("kind=\"{k}\",status=\"{s}\""), h.clone())).collect();
        histogram(
            &mut out,
            "tether_tool_call_duration_seconds",
            "Tool calls, from item.started to item.completed.",
            &tools,
        );
        let waits: Vec<_> =
            lock(&self.permission_waits).iter().map(|(d, h)| (format!("decision=\"{d}\""), h.clone())).collect();
        histogram(
            &mut out,
            "tether_permission_wait_seconds",
            "How long permission requests waited for an answer.",
            &waits,
        );
        let waits: Vec<_> =
            lock(&self.question_waits).iter().map(|(o, h)| (format!("outcome=\"{o}\""), h.clone())).collect();
        histogram(&mut out, "tether_question_wait_seconds", "How long questions waited for an answer.", &waits);
        let _ = write!(
            out,
            "# HELP tether_events_total Events committed to the store since the start.\n# TYPE tether_events_total counter\ntether_events_total {}\n\
             # HELP tether_otel_spans_exported_total Spans the OTLP collector accepted.\n# TYPE tether_otel_spans_exported_total counter\ntether_otel_spans_exported_total {}\n\
             # HELP tether_otel_spans_dropped_total Spans dropped because the export queue was full (the collector is down or slow); events are never dropped.\n# TYPE tether_otel_spans_dropped_total counter\ntether_otel_spans_dropped_total {}\n\
             # HELP tether_otel_export_failures_total OTLP export calls that failed.\n# TYPE tether_otel_export_failures_total counter\ntether_otel_export_failures_total {}\n",
            self.events.load(Ordering::Relaxed),
            self.spans_exported.load(Ordering::Relaxed),
            self.spans_dropped.load(Ordering::Relaxed),
            self.export_failures.load(Ordering::Relaxed),
        );
        out
    }
}

fn agent_kv(agent: &str) -> KeyValue {
    KeyValue::new("gen_ai.agent.name", agent.to_string())
}

fn model_kv(model: &str) -> KeyValue {
    KeyValue::new("gen_ai.request.model", model.to_string())
}

/// A label value as Prometheus' text format writes it.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, help: &str, series: &[(String, Hist)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in series {
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
}
