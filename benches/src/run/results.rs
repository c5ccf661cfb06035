//! Figures gathered over repeats, their min/median/max, the ratios of Outrigger to Envoy and haproxy, the
//! targets of issue 6, and the two outputs: a Markdown table and `results.json`.

use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Direct,
    Outrigger,
    Envoy,
    Haproxy,
    Nginx,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Direct,
        Target::Outrigger,
        Target::Envoy,
        Target::Haproxy,
        Target::Nginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Outrigger => "outrigger",
            Target::Envoy => "envoy",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }
}

mod metrics;
pub use metrics::*;

#[derive(Debug)]
pub struct Figure {
    pub metric: &'static Metric,
    pub target: Target,
    pub values: Vec<f64>,
    pub errors: u64,
    pub unavailable: Option<String>,
}

impl Figure {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }
}

#[derive(Debug, Default)]
pub struct Results {
    pub figures: Vec<Figure>,
}

impl Results {
    fn entry(&mut self, metric: &'static Metric, target: Target) -> &mut Figure {
        let at = self
            .figures
            .iter()
            .position(|f| f.metric.key == metric.key && f.target == target);
        let at = at.unwrap_or_else(|| {
            self.figures.push(Figure {
                metric,
                target,
                values: Vec::new(),
                errors: 0,
                unavailable: None,
            });
            self.figures.len() - 1
        });
        &mut self.figures[at]
    }

    pub fn add(&mut self, metric: &'static Metric, target: Target, value: f64, errors: u64) {
        let figure = self.entry(metric, target);
        figure.values.push(value);
        figure.errors += errors;
    }

    /// Marks a figure as not measurable, keeping the first reason given.
    pub fn unavailable(&mut self, metric: &'static Metric, target: Target, reason: &str) {
        let figure = self.entry(metric, target);
        if figure.unavailable.is_none() {
            figure.unavailable = Some(reason.to_string());
        }
    }

    pub fn get(&self, metric: &Metric, target: Target) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.metric.key == metric.key && f.target == target)
    }

    pub fn median(&self, metric: &Metric, target: Target) -> Option<f64> {
        self.get(metric, target)?.median()
    }

    /// Outrigger's median over `other`'s; none for a figure that is itself a ratio between scenarios.
    pub fn ratio(&self, metric: &Metric, other: Target) -> Option<f64> {
        if [
            RESILIENT_OVER_PLAIN.key,
            TRACED_1_OVER_PLAIN.key,
            TRACED_100_OVER_PLAIN.key,
        ]
        .contains(&metric.key)
        {
            return None;
        }
        let ours = self.median(metric, Target::Outrigger)?;
        let theirs = self.median(metric, other)?;
        (theirs != 0.0).then(|| ours / theirs)
    }

    /// The targets of issues 6 and 10: (name, measured, met).
    pub fn targets(&self) -> Vec<(&'static str, Option<String>, Option<bool>)> {
        let ratio = |metric: &Metric, other, limit: f64, at_most: bool| {
            let r = self.ratio(metric, other);
            let met = r.map(|r| if at_most { r <= limit } else { r >= limit });
            (r.map(|r| format!("{r:.2}x")), met)
        };
        let (throughput, throughput_met) = ratio(&H1_RPS, Target::Haproxy, 1.0, false);
        let (p99, p99_met) = ratio(&H1_P99, Target::Haproxy, 1.0, true);
        let (cpu, cpu_met) = ratio(&CPU_PER_1K, Target::Envoy, 0.25, true);
        let (rss, rss_met) = ratio(&PEAK_RSS, Target::Envoy, 0.2, true);
        let added = self.median(&MESH_ADDED_P99, Target::Outrigger);
        let resilient = self.median(&RESILIENT_OVER_PLAIN, Target::Outrigger);
        let traced = self.median(&TRACED_1_OVER_PLAIN, Target::Outrigger);
        let (xds_rss, xds_rss_met) = ratio(&XDS_RSS, Target::Envoy, 0.2, true);
        let (xds_ack, xds_ack_met) = ratio(&XDS_ACK, Target::Envoy, 1.0, true);
        let idle_ratio = self.median(&IDLE_P99_RATIO, Target::Outrigger);
        let xds_failed = self
            .get(&XDS_FAILED, Target::Outrigger)
            .and_then(|f| f.max());
        vec![
            (
                "throughput (a) >= haproxy's (ratio >= 1)",
                throughput,
                throughput_met,
            ),
            (
                "p99 at 1000 req/s (b) <= haproxy's (ratio <= 1)",
                p99,
                p99_met,
            ),
            (
                "CPU per 1000 requests <= 1/4 of Envoy's (ratio <= 0.25)",
                cpu,
                cpu_met,
            ),
            ("peak RSS <= 1/5 of Envoy's (ratio <= 0.20)", rss, rss_met),
            (
                "two-sidecar added p99 <= 0.3 ms (c)",
                added.map(|a| format!("{a:.3} ms")),
                added.map(|a| a <= 0.3),
            ),
            (
                "retries, circuit breakers, outlier detection, local rate limit cost <= 5 % of (a): (g)/(a) >= 0.95 (issue 10)",
                resilient.map(|r| format!("{r:.3}")),
                resilient.map(|r| r >= 0.95),
            ),
            (
                "tracing at 1 % and a file access log cost <= 10 % of (a): (i)/(a) >= 0.90 (issue 12)",
                traced.map(|r| format!("{r:.3}")),
                traced.map(|r| r >= 0.9),
            ),
            (
                "(h) RSS after a 5,000-cluster push <= 1/5 of Envoy's (issue 11)",
                xds_rss,
                xds_rss_met,
            ),
            (
                "(h) push to ACK no slower than Envoy (ratio <= 1) (issue 11)",
                xds_ack,
                xds_ack_met,
            ),
            (
                "(h) no failed request during the push (issue 11)",
                xds_failed.map(|f| format!("{f:.0} failed")),
                xds_failed.map(|f| f == 0.0),
            ),
            (
                "(j) p99 beside 10,000 idle connections <= 2x p99 alone (issue 14)",
                idle_ratio.map(|r| format!("{r:.2}x")),
                idle_ratio.map(|r| r <= 2.0),
            ),
        ]
    }
}

fn number(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// `median (min–max)`, `n/a [k]` with a footnote, plus a warning when requests failed.
fn cell(figure: Option<&Figure>, notes: &mut Vec<String>) -> String {
    let Some(figure) = figure else {
        return "-".into();
    };
    let mut text = match (figure.median(), figure.min(), figure.max()) {
        (Some(median), Some(min), Some(max)) => {
            let d = figure.metric.decimals;
            if figure.values.len() > 1 {
                format!(
                    "{} ({}–{})",
                    number(median, d),
                    number(min, d),
                    number(max, d)
                )
            } else {
                number(median, d)
            }
        }
        _ => {
            let reason = figure
                .unavailable
                .clone()
                .unwrap_or_else(|| "not measured".into());
            let at = notes.iter().position(|n| *n == reason).unwrap_or_else(|| {
                notes.push(reason);
                notes.len() - 1
            });
            return format!("n/a [{}]", at + 1);
        }
    };
    if figure.errors > 0 {
        let _ = write!(text, " ⚠{} errors", figure.errors);
    }
    text
}

fn ratio_cell(results: &Results, metric: &Metric, other: Target) -> String {
    results
        .ratio(metric, other)
        .map(|r| format!("{r:.2}x"))
        .unwrap_or_else(|| "-".into())
}

/// A table of `metrics` for `targets`, with the ratio of Outrigger to Envoy.
fn envoy_table(
    out: &mut String,
    results: &Results,
    metrics: &[&'static Metric],
    targets: &[Target],
    notes: &mut Vec<String>,
) {
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    let _ = writeln!(
        out,
        "\n| scenario: figure | unit | {} | outrigger/envoy |\n|---|---|{}---|",
        names.join(" | "),
        "---|".repeat(targets.len())
    );
    for metric in metrics {
        let cells: Vec<String> = targets
            .iter()
            .map(|t| cell(results.get(metric, *t), notes))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            metric.label,
            metric.unit,
            cells.join(" | "),
            ratio_cell(results, metric, Target::Envoy)
        );
    }
}

pub fn markdown(results: &Results, header: &str) -> String {
    let mut notes = Vec::new();
    let mut out = format!("{header}\n\n");
    out.push_str("| scenario: figure | unit | direct | outrigger | envoy | haproxy | nginx | outrigger/envoy | outrigger/haproxy |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for metric in MAIN {
        let cells: Vec<String> = Target::ALL
            .iter()
            .map(|t| cell(results.get(metric, *t), &mut notes))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            metric.label,
            metric.unit,
            cells.join(" | "),
            ratio_cell(results, metric, Target::Envoy),
            ratio_cell(results, metric, Target::Haproxy)
        );
    }
    envoy_table(
        &mut out,
        results,
        &MESH,
        &[Target::Direct, Target::Outrigger, Target::Envoy],
        &mut notes,
    );
    envoy_table(
        &mut out,
        results,
        &XDS,
        &[Target::Outrigger, Target::Envoy],
        &mut notes,
    );
    envoy_table(
        &mut out,
        results,
        &IDLE,
        &[Target::Outrigger, Target::Envoy],
        &mut notes,
    );
    out.push_str("\n| target (issues 6, 10 and 11) | measured | met |\n|---|---|---|\n");
    for (name, measured, met) in results.targets() {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**MISSED**",
            None => "not measured",
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {met} |",
            measured.as_deref().unwrap_or("n/a")
        );
    }
    if !notes.is_empty() {
        out.push('\n');
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {}", i + 1, note.replace('\n', " "));
        }
    }
    out
}

pub fn json(results: &Results, about: Value) -> Value {
    let figures: Vec<Value> = results
        .figures
        .iter()
        .map(|f| {
            json!({
                "scenario": f.metric.scenario,
                "metric": f.metric.key,
                "label": f.metric.label,
                "unit": f.metric.unit,
                "target": f.target,
                "values": f.values,
                "min": f.min(),
                "median": f.median(),
                "max": f.max(),
                "errors": f.errors,
                "unavailable": f.unavailable,
            })
        })
        .collect();
    let ratios: Vec<Value> = MAIN
        .iter()
        .chain(MESH.iter())
        .chain(XDS.iter())
        .chain(IDLE.iter())
        .map(|m| {
            json!({
                "metric": m.key,
                "unit": m.unit,
                "outrigger_over_envoy": results.ratio(m, Target::Envoy),
                "outrigger_over_haproxy": results.ratio(m, Target::Haproxy),
            })
        })
        .collect();
    let targets: Vec<Value> = results
        .targets()
        .into_iter()
        .map(|(name, measured, met)| json!({"target": name, "measured": measured, "met": met}))
        .collect();
    json!({
        "about": about,
        "figures": figures,
        "ratios": ratios,
        "targets": targets,
    })
}
