//! Inline SVG bar charts of the per-day statistics.
//!
//! The SVG is built from numbers only: every coordinate comes from [`num`], which never
//! prints `NaN` or infinity, and the only text is generated here (axis labels, formatted
//! values) or the caller's day labels, all passed through [`escape`]. That is why the pages
//! may insert these strings without escaping them again; nothing a remailer sends reaches
//! them.

use std::fmt::Write as _;

use super::{Day, escape};

/// Size of the full charts, in CSS pixels (they scale down with the page).
pub const CHART_WIDTH: f64 = 600.0;
pub const CHART_HEIGHT: f64 = 160.0;
/// Latencies are drawn up to this many seconds (100 h); longer ones are drawn at the top.
pub const LATENCY_CAP_SECS: f64 = 360_000.0;

const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// A bar with data is never thinner than this, so that a 0 % day differs from a gap.
const MIN_BAR_HEIGHT: f64 = 1.5;

const SPARK_WIDTH: f64 = 72.0;
const SPARK_HEIGHT: f64 = 18.0;

const AXIS: &str = "#555";
const GRID: &str = "#ddd";
const NO_DATA: &str = "#bbb";
const LATENCY_FILL: &str = "#1f5f9f";

/// A coordinate or length: one decimal, no trailing `.0`, never `NaN` or infinite.
fn num(x: f64) -> String {
    let x = if x.is_finite() { x } else { 0.0 };
    // In integer tenths: float formatting with a precision was most of a page's cost.
    // Halves round to even, as `{:.1}` does; coordinates are far from the range of i64.
    let tenths = (x * 10.0).round_ties_even() as i64;
    let (int, frac) = (tenths / 10, (tenths % 10).abs());
    let sign = if tenths < 0 && int == 0 { "-" } else { "" };
    if frac == 0 { format!("{int}") } else { format!("{sign}{int}.{frac}") }
}

/// A reliability in 0..=1, or `None` for a missing day or a value that is not a number.
pub(crate) fn reliability_value(r: Option<f64>) -> Option<f64> {
    r.filter(|v| !v.is_nan()).map(|v| v.clamp(0.0, 1.0))
}

/// A latency in 0..=[`LATENCY_CAP_SECS`], or `None` for a missing day or a value that is
/// not a number.
pub(crate) fn latency_value(l: Option<f64>) -> Option<f64> {
    l.filter(|v| !v.is_nan()).map(|v| v.clamp(0.0, LATENCY_CAP_SECS))
}

/// `99.1%`.
pub(crate) fn percent(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// `1:02:03` (hours are not wrapped at 24).
pub(crate) fn hms(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs as u64 } else { 0 };
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// `1:05` for the latency axis, `45m` below an hour.
fn hm(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs as u64 } else { 0 };
    match s / 3600 {
        0 => format!("{}m", s / 60),
        h => format!("{}:{:02}", h, (s / 60) % 60),
    }
}

/// The axis label of a day: `MM-DD` for an ISO date, otherwise the label itself (at most
/// ten characters).
fn day_label(date: &str) -> String {
    let b = date.as_bytes();
    let iso = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if iso { date[5..].to_owned() } else { date.chars().take(10).collect() }
}

fn reliability_fill(r: f64) -> &'static str {
    if r >= 0.9 {
        "#2e7d32"
    } else if r >= 0.5 {
        "#c77c02"
    } else {
        "#c62828"
    }
}

/// What one chart draws: per day a value already in `0..=max`, its hover text and colour.
struct Series<'a> {
    /// Accessible name of the chart.
    label: String,
    days: &'a [Day],
    values: Vec<Option<f64>>,
    max: f64,
    /// Tick positions (in value units) and their labels, bottom to top.
    ticks: Vec<(f64, String)>,
    value_text: fn(f64) -> String,
    fill: fn(f64) -> &'static str,
}

fn open_svg(out: &mut String, width: f64, height: f64, class: &str, label: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{class}\" role=\"img\" \
         aria-label=\"{label}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"10\"><title>{label}</title>",
        label = escape(label),
        w = num(width),
        h = num(height),
    );
}

fn range_text(days: &[Day]) -> String {
    match (days.first(), days.last()) {
        (Some(first), Some(last)) => format!("{} to {}", first.date, last.date),
        _ => "no days".to_owned(),
    }
}

fn summary(values: &[Option<f64>], text: fn(f64) -> String) -> String {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let lo = known.iter().copied().reduce(f64::min);
    let hi = known.iter().copied().reduce(f64::max);
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!(
            "{} of {} days with data, lowest {}, highest {}",
            known.len(),
            values.len(),
            text(lo),
            text(hi)
        ),
        _ => "no data".to_owned(),
    }
}

fn render(series: &Series) -> String {
    let plot_w = CHART_WIDTH - LEFT - RIGHT;
    let plot_h = CHART_HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let max = if series.max > 0.0 && series.max.is_finite() { series.max } else { 1.0 };
    let y_of = |v: f64| base - (v / max).clamp(0.0, 1.0) * plot_h;

    let mut out = String::new();
    open_svg(&mut out, CHART_WIDTH, CHART_HEIGHT, "chart", &series.label);

    // Grid lines and y labels.
    for (v, text) in &series.ticks {
        let y = num(y_of(*v));
        let _ = write!(
            out,
            "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{GRID}\"/>\
             <text x=\"{tx}\" y=\"{y}\" dy=\"3\" text-anchor=\"end\" fill=\"{AXIS}\">{t}</text>",
            x1 = num(LEFT),
            x2 = num(LEFT + plot_w),
            tx = num(LEFT - 4.0),
            t = escape(text),
        );
    }

    // Bars, one slot per day, oldest on the left.
    let n = series.days.len().max(1);
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let label_every = n.div_ceil(12);
    for (i, (day, value)) in series.days.iter().zip(&series.values).enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
        match value {
            Some(v) => {
                let h = ((v / max).clamp(0.0, 1.0) * plot_h).max(MIN_BAR_HEIGHT);
                let _ = write!(
                    out,
                    "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
                     fill=\"{fill}\"><title>{date}: {text}</title></rect>",
                    x = num(x),
                    y = num(base - h),
                    w = num(bar_w),
                    h = num(h),
                    fill = (series.fill)(*v),
                    date = escape(&day.date),
                    text = escape(&(series.value_text)(*v)),
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<rect class=\"nodata\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"2\" \
                     fill=\"{NO_DATA}\"><title>{date}: no data</title></rect>",
                    x = num(x),
                    y = num(base - 2.0),
                    w = num(bar_w),
                    date = escape(&day.date),
                );
            }
        }
        if i % label_every == 0 {
            let _ = write!(
                out,
                "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" fill=\"{AXIS}\">{t}</text>",
                x = num(LEFT + (i as f64 + 0.5) * slot),
                y = num(base + 14.0),
                t = escape(&day_label(&day.date)),
            );
        }
    }

    // Axes on top of the bars.
    let _ = write!(
        out,
        "<path d=\"M{l} {t}V{b}H{r}\" fill=\"none\" stroke=\"{AXIS}\"/></svg>",
        l = num(LEFT),
        t = num(TOP),
        b = num(base),
        r = num(LEFT + plot_w),
    );
    out
}

/// A bar chart of the reliability of each day (`0..=1`, clamped; `None` or `NaN` is a
/// gap), oldest day first.
pub fn reliability_chart(days: &[Day]) -> String {
    let values: Vec<Option<f64>> = days.iter().map(|d| reliability_value(d.reliability)).collect();
    let label = format!("Reliability per day, {}: {}", range_text(days), summary(&values, percent));
    render(&Series {
        label,
        days,
        values,
        max: 1.0,
        ticks: [0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|&v| (v, format!("{}%", v * 100.0)))
            .collect(),
        value_text: percent,
        fill: reliability_fill,
    })
}

/// A bar chart of the median latency of each day in seconds (negative values are 0, values
/// beyond [`LATENCY_CAP_SECS`] are drawn at the cap; `None` or `NaN` is a gap), oldest day
/// first. The scale is the smallest of 5 min … 100 h that holds the longest day.
pub fn latency_chart(days: &[Day]) -> String {
    const SCALES: [f64; 13] = [
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        10_800.0,
        21_600.0,
        43_200.0,
        86_400.0,
        172_800.0,
        259_200.0,
        LATENCY_CAP_SECS,
    ];
    let values: Vec<Option<f64>> = days.iter().map(|d| latency_value(d.latency_secs)).collect();
    let longest = values.iter().flatten().copied().fold(0.0, f64::max);
    let max = SCALES.iter().copied().find(|&s| longest <= s).unwrap_or(LATENCY_CAP_SECS);
    let label = format!("Median latency per day, {}: {}", range_text(days), summary(&values, hms));
    render(&Series {
        label,
        days,
        values,
        max,
        ticks: [0.0, 0.5, 1.0].iter().map(|&f| (f * max, hm(f * max))).collect(),
        value_text: hms,
        fill: |_| LATENCY_FILL,
    })
}

/// A bar chart of the uptime of each day (up slots over known slots, `0..=1`; `None` is a
/// day with nothing known), oldest day first: the long-term chart of a remailer page.
pub fn uptime_chart(days: &[Day]) -> String {
    let values: Vec<Option<f64>> = days.iter().map(|d| reliability_value(d.reliability)).collect();
    let label = format!("Uptime per day, {}: {}", range_text(days), summary(&values, percent));
    render(&Series {
        label,
        days,
        values,
        max: 1.0,
        ticks: [0.0, 0.5, 1.0].iter().map(|&v| (v, format!("{}%", v * 100.0))).collect(),
        value_text: percent,
        fill: reliability_fill,
    })
}

/// A small reliability chart for a table cell: one bar per day, no axes, a baseline.
pub fn reliability_sparkline(days: &[Day]) -> String {
    let values: Vec<Option<f64>> = days.iter().map(|d| reliability_value(d.reliability)).collect();
    let label = format!("Reliability per day, {}", summary(&values, percent));
    let mut out = String::new();
    open_svg(&mut out, SPARK_WIDTH, SPARK_HEIGHT, "spark", &label);
    let n = days.len().max(1);
    let slot = SPARK_WIDTH / n as f64;
    let bar_w = (slot * 0.75).max(0.5);
    let plot_h = SPARK_HEIGHT - 1.0;
    for (i, (day, value)) in days.iter().zip(&values).enumerate() {
        if let Some(v) = value {
            let h = (v * plot_h).max(MIN_BAR_HEIGHT);
            let _ = write!(
                out,
                "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
                 fill=\"{fill}\"><title>{date}: {text}</title></rect>",
                x = num(i as f64 * slot + (slot - bar_w) / 2.0),
                y = num(plot_h - h),
                w = num(bar_w),
                h = num(h),
                fill = reliability_fill(*v),
                date = escape(&day.date),
                text = percent(*v),
            );
        }
    }
    let _ = write!(
        out,
        "<line x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"{NO_DATA}\"/></svg>",
        y = num(SPARK_HEIGHT - 0.5),
        w = num(SPARK_WIDTH),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain() {
        for k in -2000..2000 {
            let x = f64::from(k) * 0.37;
            let n = num(x);
            let back: f64 = n.parse().unwrap();
            assert!((back - x).abs() <= 0.05 + 1e-9, "{x} became {n}");
            assert!(n != "-0" && !n.ends_with(".0"), "{x} became {n}");
        }
        assert_eq!(num(-0.25), "-0.2");
        assert_eq!(num(-1.5), "-1.5");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.25), "1.2");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(f64::INFINITY), "0");
    }

    #[test]
    fn labels() {
        assert_eq!(day_label("2024-01-05"), "01-05");
        assert_eq!(day_label("2024-01-5x"), "2024-01-5x");
        assert_eq!(day_label("ääääääääääää"), "ääääääääää");
        assert_eq!(hms(3723.9), "1:02:03");
        assert_eq!(hms(f64::NAN), "0:00:00");
        assert_eq!(hm(1800.0), "30m");
        assert_eq!(hm(5400.0), "1:30");
    }
}
