//! The SVG plot of a load `Summary`: latency percentile curves per phase
//! (solid from the actual start, dashed from the schedule; every percentile
//! tick labelled up to "max") above two timelines from t = 0 sharing the time
//! axis: publishing and failed publishers, then the aggregate bitrate.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::load::aggregate::Summary;
use crate::load::hist::{Hist, MICROS_PER_MS};
use crate::load::record::Sample;
use crate::publish::Phase;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 1000;

/// Writes the plot to `path`.
pub fn write_svg(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT * 11 / 20);
    let (counts, bitrate) = bottom.split_vertically(HEIGHT * 9 / 40);
    latency_panel(s, &top)?;
    counts_panel(s, &counts)?;
    bitrate_panel(s, &bitrate)?;
    root.present()?;
    Ok(())
}

/// One curve: (x = log10(1/(1-p)), y = ms) per `iter_quantiles(5)` step.
fn curve(h: &Hist, x_cap: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.inner()
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q < 1.0 {
                (-(1.0 - q).log10()).min(x_cap)
            } else {
                x_cap
            };
            (x, v.value_iterated_to() as f64 / MICROS_PER_MS)
        })
        .collect()
}

/// The percentile at whole step `x` (0 -> 0%, 1 -> 90%, 3 -> 99.9%).
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn latency_panel(s: &Summary, area: &DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()> {
    let h = &s.histograms;
    let most = h
        .phases
        .values()
        .chain(h.phases_from_schedule.values())
        .chain(s.viewers.iter().flat_map(|v| {
            let vh = &v.histograms;
            [&vh.first_frame, &vh.first_frame_from_schedule, &vh.latency]
        }))
        .map(Hist::count)
        .max()
        .unwrap_or(0);
    // The 100% point sits a little right of the last finite percentile.
    let x_cap = ((most.max(1) as f64).log10() + 0.5).max(1.0);
    // Per phase with data: its colour, the curve from the actual start and
    // the curve from the schedule.
    let mut curves = Vec::new();
    for (i, (name, hist)) in Summary::in_phase_order(&h.phases).into_iter().enumerate() {
        let from_schedule = h
            .phases_from_schedule
            .get(name)
            .map(|x| curve(x, x_cap))
            .unwrap_or_default();
        let from_start = curve(hist, x_cap);
        if !from_start.is_empty() || !from_schedule.is_empty() {
            curves.push((
                name.to_owned(),
                Palette99::pick(i).to_rgba(),
                from_start,
                from_schedule,
            ));
        }
    }
    // Viewers: first frame (from start and from schedule) and per-frame
    // push-to-play latency, after the publisher phases.
    if let Some(v) = &s.viewers {
        let vh = &v.histograms;
        let n = curves.len() + Phase::TIMED.len();
        for (i, (name, from_start, from_schedule)) in [
            (
                "viewer_first_frame",
                &vh.first_frame,
                Some(&vh.first_frame_from_schedule),
            ),
            ("viewer_latency", &vh.latency, None),
        ]
        .into_iter()
        .enumerate()
        {
            let start = curve(from_start, x_cap);
            let schedule = from_schedule.map(|h| curve(h, x_cap)).unwrap_or_default();
            if !start.is_empty() || !schedule.is_empty() {
                curves.push((
                    name.to_owned(),
                    Palette99::pick(n + i).to_rgba(),
                    start,
                    schedule,
                ));
            }
        }
    }
    let y_max = curves
        .iter()
        .flat_map(|c| c.2.iter().chain(&c.3).map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.05;

    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency by phase, ms (solid: from start, dashed: from schedule)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_cap, 0.0..y_max)?;
    // Plotters picks its own x ticks; ours are the whole percentile steps
    // (0%, 90%, 99%, ...) and "max", each with a grid line and a label.
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_labels(0)
        .disable_x_mesh()
        .draw()?;
    let ticks: Vec<(f64, String)> = (0..)
        .map(f64::from)
        .take_while(|x| *x < x_cap - 0.25)
        .map(|x| (x, percentile_label(x)))
        .chain([(x_cap, "max".to_string())])
        .collect();
    for (x, label) in &ticks {
        chart.draw_series(LineSeries::new(
            [(*x, 0.0), (*x, y_max)],
            BLACK.mix(0.15).stroke_width(1),
        ))?;
        let (px, py) = chart.backend_coord(&(*x, 0.0));
        area.draw(&Text::new(
            label.clone(),
            (px - 12, py + 6),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    if curves.is_empty() {
        return Ok(());
    }
    for (name, color, from_start, from_schedule) in curves {
        let style = color.stroke_width(2);
        chart.draw_series(DashedLineSeries::new(from_schedule, 6, 4, style))?;
        chart
            .draw_series(LineSeries::new(from_start, style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    // The line styles, explained in the legend itself.
    let key = BLACK.stroke_width(2);
    chart
        .draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), key))?
        .label("from start (solid)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], key));
    chart
        .draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), key))?
        .label("from schedule (dashed)")
        .legend(move |(x, y)| {
            plotters::element::DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, key)
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The timeline's points of `f`, starting at t = 0 (zero before the first sample).
fn timeline(s: &Summary, f: &dyn Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = s
        .timeline
        .iter()
        .filter(|x| x.t_s.is_finite())
        .map(|x| (x.t_s, f(x)))
        .collect();
    match points.first() {
        Some((t, _)) if *t > 0.0 => std::iter::once((0.0, 0.0)).chain(points).collect(),
        _ => points,
    }
}

fn t_max(s: &Summary) -> f64 {
    s.timeline
        .iter()
        .map(|x| x.t_s)
        .filter(|x| x.is_finite())
        .fold(1.0, f64::max)
}

fn counts_panel(s: &Summary, area: &DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()> {
    let count_max = s
        .timeline
        .iter()
        .map(|x| x.publishing.max(x.failed))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "timeline: publishing and failed publishers",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(s), 0.0..count_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("publishers")
        .draw()?;
    let green = GREEN.mix(0.9).stroke_width(2);
    let red = RED.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            timeline(s, &|x| x.publishing as f64),
            green,
        ))?
        .label("publishing")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
    chart
        .draw_series(LineSeries::new(timeline(s, &|x| x.failed as f64), red))?
        .label("failed")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn bitrate_panel(s: &Summary, area: &DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()> {
    let mbps = |b: u64| b as f64 / 1e6;
    let rate_max = s
        .timeline
        .iter()
        .map(|x| mbps(x.bitrate_bps))
        .fold(0.001, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("timeline: aggregate bitrate sent", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(s), 0.0..rate_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("Mbit/s")
        .draw()?;
    let blue = BLUE.stroke_width(2);
    chart
        .draw_series(LineSeries::new(timeline(s, &|x| mbps(x.bitrate_bps)), blue))?
        .label("bitrate, Mbit/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::aggregate::Aggregator;
    use crate::load::aggregate::tests::meta;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }

    #[test]
    fn svg_has_both_panels_and_the_phase_names() {
        let s = crate::report::tests::summary();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        write_svg(&s, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg"));
        for name in [
            "dns",
            "tcp",
            "handshake",
            "connect",
            "create_stream",
            "publish",
        ] {
            assert!(
                svg.contains(&format!(">\n{name}\n</text>")),
                "no {name} in the legend"
            );
        }
        assert!(svg.contains("publishing") && svg.contains("failed") && svg.contains("bitrate"));
        for label in [
            "from start (solid)",
            "from schedule (dashed)",
            "0%",
            "90%",
            "99%",
            "max",
        ] {
            assert!(
                svg.contains(&format!(">\n{label}\n</text>")),
                "no {label} label"
            );
        }
    }

    #[test]
    fn svg_of_an_empty_run() {
        let s = Aggregator::new().summary(meta(None, 0));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        write_svg(&s, &path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
    }
}
