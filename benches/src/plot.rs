//! `sundial-bench plot`: renders delivery lateness and backlog over time to a PNG, from
//! a Prometheus that scrapes sundial, with the dashboard's own panel queries (read from
//! `grafana/dashboards/sundial.json`), so the picture shows what the dashboard would.

use plotters::prelude::*;
use serde_json::Value;
use std::path::PathBuf;

/// Arguments of `sundial-bench plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Prometheus base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    prometheus: String,
    /// The dashboard whose queries are drawn.
    #[arg(long, default_value = "grafana/dashboards/sundial.json")]
    dashboard: PathBuf,
    /// Minutes up to now to draw.
    #[arg(long, default_value_t = 5)]
    minutes: u64,
    /// Seconds between points.
    #[arg(long, default_value_t = 2)]
    step: u64,
    /// What `$__rate_interval` stands for (4 scrape intervals or more).
    #[arg(long, default_value = "15s")]
    rate_interval: String,
    /// A TrueType font for the labels.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "sundial.png")]
    out: PathBuf,
}

/// One line: a legend and its (seconds from the start, value) points.
struct Line {
    legend: String,
    points: Vec<(f64, f64)>,
}

/// The two charts and the dashboard panels they draw, with a scale for the values.
const CHARTS: [(&str, &[&str], f64, &str); 2] = [
    (
        "Delivery lateness (Ready time - delivery time)",
        &["Delivery lateness percentiles"],
        1000.0,
        "ms",
    ),
    (
        "Backlog",
        &["Timing", "Ready backlog", "Inflight"],
        1.0,
        "messages",
    ),
];

pub fn run(a: Args) -> Result<(), String> {
    let font = std::fs::read(&a.font).map_err(|e| {
        format!(
            "cannot read the font {} ({e}); `make setup` installs fonts-dejavu-core",
            a.font.display()
        )
    })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| "the font is not a TrueType font".to_string())?;
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(&a.dashboard)
            .map_err(|e| format!("{}: {e}", a.dashboard.display()))?,
    )
    .map_err(|e| format!("{}: {e}", a.dashboard.display()))?;
    let end = sundial_wire::now_ms() as f64 / 1000.0;
    let start = end - (a.minutes * 60) as f64;
    let mut charts = Vec::new();
    for (title, panels, scale, unit) in CHARTS {
        let mut lines = Vec::new();
        for panel in panels {
            for (legend, expr) in panel_queries(&dash, panel)? {
                let expr = expr
                    .replace("$__rate_interval", &a.rate_interval)
                    .replace("$instance", ".*");
                for mut l in query_range(&a.prometheus, &expr, start, end, a.step)? {
                    let name = if l.legend.is_empty() {
                        &legend
                    } else {
                        &l.legend
                    };
                    l.legend = format!("{panel}: {name}");
                    l.points = l
                        .points
                        .iter()
                        .map(|(t, v)| (t - start, v * scale))
                        .collect();
                    lines.push(l);
                }
            }
        }
        charts.push((title, unit, lines));
    }
    let root = BitMapBackend::new(&a.out, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((charts.len(), 1));
    for ((title, unit, lines), area) in charts.iter().zip(areas.iter()) {
        draw(area, title, unit, lines, (a.minutes * 60) as f64)?;
    }
    root.present().map_err(|e| e.to_string())?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// `(legend format, expression)` of each target of the panel titled `title`.
fn panel_queries(dash: &Value, title: &str) -> Result<Vec<(String, String)>, String> {
    let mut all: Vec<&Value> = Vec::new();
    for p in dash["panels"]
        .as_array()
        .ok_or("the dashboard has no panels")?
    {
        all.push(p);
        all.extend(p["panels"].as_array().into_iter().flatten());
    }
    let p = all
        .into_iter()
        .find(|p| p["title"] == title)
        .ok_or_else(|| format!("the dashboard has no panel {title:?}"))?;
    Ok(p["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let expr = t["expr"].as_str()?.to_string();
            let legend = t["legendFormat"].as_str().unwrap_or("").to_string();
            Some((legend, expr))
        })
        .collect())
}

/// A range query; one line per series, its legend from the series' labels.
fn query_range(
    base: &str,
    expr: &str,
    start: f64,
    end: f64,
    step: u64,
) -> Result<Vec<Line>, String> {
    let body = ureq::get(format!("{base}/api/v1/query_range"))
        .query("query", expr)
        .query("start", format!("{start:.3}"))
        .query("end", format!("{end:.3}"))
        .query("step", step.to_string())
        .call()
        .map_err(|e| format!("Prometheus at {base}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{expr}: {body}"));
    }
    Ok(v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let legend = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k != "instance" && *k != "job")
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let points = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let t = p[0].as_f64()?;
                    let v: f64 = p[1].as_str()?.parse().ok()?;
                    v.is_finite().then_some((t, v))
                })
                .collect();
            Line { legend, points }
        })
        .collect())
}

fn draw(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    lines: &[Line],
    span: f64,
) -> Result<(), String> {
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..span, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, l) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(l.legend.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
