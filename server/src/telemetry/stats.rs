//! What the turns cost and how long things took, counted once for both
//! outlets: `/metrics` (Prometheus text, always) and OTLP (when an exporter
//! is configured, through the OpenTelemetry instruments in [`Instruments`]).
//! Each measure is declared once ([`COUNTERS`], [`HISTOGRAMS`]) with its
//! name on both sides; a label has a Prometheus name and an OpenTelemetry key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

/// Bucket bounds of the duration histograms, in seconds: a tool call takes
/// milliseconds to minutes, a person answers in seconds to an hour.
const BUCKETS: [f64; 14] = [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// A measure: its Prometheus family, its OpenTelemetry instrument and unit, what it counts.
struct Measure {
    prometheus: &'static str,
    otel: &'static str,
    unit: &'static str,
    help: &'static str,
}

#[derive(Clone, Copy)]
enum Count {
    Tokens = 0,
    Cost = 1,
}

const COUNTERS: [Measure; 2] = [
    Measure {
        prometheus: "tether_tokens_total",
        otel: "tether.tokens",
        unit: "{token}",
        help: "Tokens the agents' turns used, by agent, model and type.",
    },
    Measure {
        prometheus: "tether_cost_usd_total",
        otel: "tether.cost",
        unit: "USD",
        help: "What the agents' turns cost in USD, as the agents report it.",
    },
];

#[derive(Clone, Copy)]
enum Timed {
    Turn = 0,
    Tool = 1,
    PermissionWait = 2,
    QuestionWait = 3,
}

const HISTOGRAMS: [Measure; 4] = [
    Measure {
        prometheus: "tether_turn_duration_seconds",
        otel: "tether.turn.duration",
        unit: "s",
        help: "Turns, from accepted message to turn.completed.",
    },
    Measure {
        prometheus: "tether_tool_call_duration_seconds",
        otel: "tether.tool.duration",
        unit: "s",
        help: "Tool calls, from item.started to item.completed.",
    },
    Measure {
        prometheus: "tether_permission_wait_seconds",
        otel: "tether.permission.wait",
        unit: "s",
        help: "How long permission requests waited for an answer.",
    },
    Measure {
        prometheus: "tether_question_wait_seconds",
        otel: "tether.question.wait",
        unit: "s",
        help: "How long questions waited for an answer.",
    },
];

/// A label: its Prometheus name, its OpenTelemetry key, its value.
type Label<'a> = (&'static str, &'static str, &'a str);

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
    counters: Vec<Counter<f64>>,
    histograms: Vec<Histogram<f64>>,
    events: Counter<u64>,
}

impl Instruments {
    pub fn new(meter: &Meter) -> Instruments {
        let counters = COUNTERS
            .iter()
            .map(|m| meter.f64_counter(m.otel).with_unit(m.unit).with_description(m.help).build())
            .collect();
        let histograms = HISTOGRAMS
            .iter()
            .map(|m| {
                let h = meter.f64_histogram(m.otel).with_unit(m.unit).with_description(m.help);
                h.with_boundaries(BUCKETS.to_vec()).build()
            })
            .collect();
        let events = meter
            .u64_counter("tether.events")
            .with_unit("{event}")
            .with_description("Events committed to the store")
            .build();
        Instruments { counters, histograms, events }
    }
}

/// The counts since this server started.
#[derive(Default)]
pub struct Stats {
    /// By measure and label text (`agent="claude",model="…"`).
    counters: Mutex<BTreeMap<(usize, String), f64>>,
    histograms: Mutex<BTreeMap<(usize, String), Hist>>,
    events: AtomicU64,
    /// Spans exported, and dropped because the export queue was full.
    pub spans_exported: AtomicU64,
    pub spans_dropped: AtomicU64,
    /// Export calls (spans or metrics) the collector did not accept.
    pub export_failures: AtomicU64,
    otel: OnceLock<Instruments>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The labels as Prometheus writes them inside `{}`.
fn label_text(labels: &[Label]) -> String {
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    labels.iter().map(|(name, _, v)| format!("{name}=\"{}\"", esc(v))).collect::<Vec<_>>().join(",")
}

fn key_values(labels: &[Label]) -> Vec<KeyValue> {
    labels.iter().map(|(_, key, v)| KeyValue::new(*key, v.to_string())).collect()
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

    fn add(&self, what: Count, labels: &[Label], n: f64) {
        *lock(&self.counters).entry((what as usize, label_text(labels))).or_default() += n;
        if let Some(o) = self.otel.get() {
            o.counters[what as usize].add(n, &key_values(labels));
        }
    }

    fn observe(&self, what: Timed, labels: &[Label], secs: f64) {
        lock(&self.histograms).entry((what as usize, label_text(labels))).or_default().observe(secs);
        if let Some(o) = self.otel.get() {
            o.histograms[what as usize].record(secs, &key_values(labels));
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
        let (agent, model) = (("agent", "gen_ai.agent.name", agent), ("model", "gen_ai.request.model", model));
        for (kind, n) in by_type {
            if let Some(n) = n.filter(|n| *n > 0) {
                self.add(Count::Tokens, &[agent, model, ("type", "gen_ai.token.type", kind)], n as f64);
            }
        }
        if let Some(cost) = usage.cost_usd.filter(|c| *c > 0.0) {
            self.add(Count::Cost, &[agent, model], cost);
        }
    }

    pub fn turn(&self, agent: &str, stop_reason: &str, secs: f64) {
        let labels = [("agent", "gen_ai.agent.name", agent), ("stop_reason", "tether.stop_reason", stop_reason)];
        self.observe(Timed::Turn, &labels, secs);
    }

    pub fn tool(&self, kind: &str, status: &str, secs: f64) {
        let labels = [("kind", "tether.tool.kind", kind), ("status", "tether.tool.status", status)];
        self.observe(Timed::Tool, &labels, secs);
    }

    pub fn permission_wait(&self, decision: &str, secs: f64) {
        self.observe(Timed::PermissionWait, &[("decision", "tether.permission.decision", decision)], secs);
    }

    pub fn question_wait(&self, outcome: &str, secs: f64) {
        self.observe(Timed::QuestionWait, &[("outcome", "tether.question.outcome", outcome)], secs);
    }

    /// The Prometheus text of every family here.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let counters = lock(&self.counters);
        for (i, m) in COUNTERS.iter().enumerate() {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", m.prometheus, m.help, m.prometheus);
            for ((_, labels), n) in counters.iter().filter(|((of, _), _)| *of == i) {
                let _ = writeln!(out, "{}{{{labels}}} {n}", m.prometheus);
            }
        }
        drop(counters);
        let histograms = lock(&self.histograms);
        for (i, m) in HISTOGRAMS.iter().enumerate() {
            let name = m.prometheus;
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", m.help);
            for ((_, labels), h) in histograms.iter().filter(|((of, _), _)| *of == i) {
                for (bound, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
            }
        }
        drop(histograms);
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
