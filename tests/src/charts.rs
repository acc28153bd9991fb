//! Line charts the benches write into docs/ as SVG (plotters' SVG backend:
//! text stays `<text>`, no fonts or bitmaps are needed to draw them).

use std::path::Path;

use plotters::prelude::*;

/// How an axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Powers of ten apart (every value must be above 0).
    Log,
}

/// One chart: what it shows and how its axes are scaled.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub y_scale: Scale,
}

impl<'a> Chart<'a> {
    /// Both axes linear.
    pub fn new(title: &'a str, x_label: &'a str, y_label: &'a str) -> Self {
        Chart { title, x_label, y_label, x_scale: Scale::Linear, y_scale: Scale::Linear }
    }

    pub fn log_x(mut self) -> Self {
        self.x_scale = Scale::Log;
        self
    }

    pub fn log_y(mut self) -> Self {
        self.y_scale = Scale::Log;
        self
    }
}

/// The range a scale shows for values from `lo` to `hi`: linear from 0 (or
/// below, for negative values) with a margin on top; log with a margin on
/// both ends (at least a factor of ten wide).
fn span(scale: Scale, lo: f64, hi: f64) -> (f64, f64) {
    match scale {
        Scale::Linear => {
            let hi = if hi > 0.0 { hi * 1.1 } else { 1.0 };
            (lo.min(0.0), hi)
        }
        Scale::Log => {
            let lo = lo.max(f64::MIN_POSITIVE);
            (lo / 1.25, hi.max(lo * 10.0) * 1.25)
        }
    }
}

/// An axis label: integers with thousands as k/M, small values with enough decimals.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{}M", v / 1e6)
    } else if a >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `series` (name, points) as lines with dots into an SVG file at
/// `path`, one colour each, with a legend. Points that a log axis cannot
/// show (≤ 0) are left out.
pub fn line_chart(path: &Path, chart: Chart, series: &[(&str, Vec<(f64, f64)>)]) -> Result<(), String> {
    let keep = |&(x, y): &(f64, f64)| {
        x.is_finite()
            && y.is_finite()
            && (chart.x_scale == Scale::Linear || x > 0.0)
            && (chart.y_scale == Scale::Linear || y > 0.0)
    };
    let series: Vec<(&str, Vec<(f64, f64)>)> =
        series.iter().map(|(name, pts)| (*name, pts.iter().copied().filter(keep).collect())).collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, pts)| pts.iter().copied()).collect();
    if all.is_empty() {
        return Err(format!("{}: no points to draw", chart.title));
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| all.iter().map(pick).fold(init, f);
    let (x0, x1) = span(chart.x_scale, fold(f64::min, f64::MAX, |p| p.0), fold(f64::max, f64::MIN, |p| p.0));
    let (y0, y1) = span(chart.y_scale, fold(f64::min, f64::MAX, |p| p.1), fold(f64::max, f64::MIN, |p| p.1));
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, ("sans-serif", 20)).margin(16).x_label_area_size(44).y_label_area_size(64);
    // The four combinations of scales are four coordinate types.
    macro_rules! draw {
        ($x:expr, $y:expr) => {{
            let mut ctx = builder.build_cartesian_2d($x, $y).map_err(|e| e.to_string())?;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|v| tick_label(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let colour = Palette99::pick(i).to_rgba();
                ctx.draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
                ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|e| e.to_string())?;
            }
            ctx.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    match (chart.x_scale, chart.y_scale) {
        (Scale::Linear, Scale::Linear) => draw!(x0..x1, y0..y1),
        (Scale::Log, Scale::Linear) => draw!((x0..x1).log_scale(), y0..y1),
        (Scale::Linear, Scale::Log) => draw!(x0..x1, (y0..y1).log_scale()),
        (Scale::Log, Scale::Log) => draw!((x0..x1).log_scale(), (y0..y1).log_scale()),
    }
    root.present().map_err(|e| e.to_string())
}

/// One bar of a [`waterfall`]: a span of a trace.
#[derive(Debug, Clone)]
pub struct Bar {
    /// How deep in the tree of spans (0: the root).
    pub depth: usize,
    pub label: String,
    /// Milliseconds from the trace's start.
    pub start_ms: f64,
    pub end_ms: f64,
    /// Drawn red (the span's status is an error).
    pub error: bool,
}

/// A trace as a viewer draws it: one row per span, indented by depth, a bar
/// from its start to its end on a common time axis, its duration beside it.
pub fn waterfall(path: &Path, title: &str, bars: &[Bar]) -> Result<(), String> {
    let (label_w, bar_w, row_h, top) = (330i32, 520i32, 26i32, 48i32);
    let height = (top + row_h * bars.len() as i32 + 36) as u32;
    let root = SVGBackend::new(path, ((label_w + bar_w + 110) as u32, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let font = ("sans-serif", 14).into_font();
    let small = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
    root.draw(&Text::new(title.to_string(), (10, 14), font.clone())).map_err(|e| e.to_string())?;
    let total = bars.iter().map(|b| b.end_ms).fold(1.0, f64::max);
    let x = |ms: f64| label_w + ((ms / total) * bar_w as f64).round() as i32;
    for (i, bar) in bars.iter().enumerate() {
        let y = top + i as i32 * row_h;
        if i % 2 == 0 {
            root.draw(&Rectangle::new(
                [(0, y - 4), (label_w + bar_w + 110, y + row_h - 4)],
                RGBColor(246, 246, 248).filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let label = format!("{}{}", "  ".repeat(bar.depth), bar.label);
        root.draw(&Text::new(label, (10 + 12 * bar.depth as i32, y + 3), font.clone())).map_err(|e| e.to_string())?;
        let color = if bar.error { RGBColor(200, 60, 60) } else { RGBColor(70, 110, 200) };
        let (x0, x1) = (x(bar.start_ms), x(bar.end_ms).max(x(bar.start_ms) + 2));
        root.draw(&Rectangle::new([(x0, y), (x1, y + row_h - 10)], color.filled())).map_err(|e| e.to_string())?;
        let took = format!("{:.1} ms", bar.end_ms - bar.start_ms);
        root.draw(&Text::new(took, (x1 + 6, y + 3), small.clone())).map_err(|e| e.to_string())?;
    }
    let axis = top + row_h * bars.len() as i32 + 6;
    root.draw(&Text::new("0 ms".to_string(), (label_w, axis), small.clone())).map_err(|e| e.to_string())?;
    root.draw(&Text::new(format!("{total:.0} ms"), (label_w + bar_w - 30, axis), small)).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
