//! The plots of `results.md`, drawn with plotters' SVG backend: append throughput by record
//! size, and latency percentiles; and the helpers `ipc_plots` shares (title, legend, axes).
//! Text goes into the SVG as `<text>` elements, so no font file is read; plotters only
//! estimates text widths for the layout.

use std::collections::BTreeMap;
use std::error::Error;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{find, natural, Bench, APPEND_SIZES, APPEND_VARIANTS};

pub type DrawResult<T> = Result<T, Box<dyn Error>>;

pub const FONT: &str = "sans-serif";

/// The append plot's line colors, in the order its series are drawn; applog red, peers blue in
/// the latency plot.
pub const COLORS: [RGBColor; 9] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x00, 0x00, 0x00),
];
const APPLOG_COLOR: RGBColor = COLORS[0];
const PEER_COLOR: RGBColor = COLORS[2];
pub const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);

/// The width of the legend, right of the plot, px.
const LEGEND_WIDTH: u32 = 250;

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
pub enum Mark {
    Line(ShapeStyle),
    Dashed(ShapeStyle),
    Bar(ShapeStyle),
}

/// Payload throughput (bytes/s, log scale) by record size, one line per variant: applog's
/// solid, the peers' dashed.
pub fn append_svg(benches: &[Bench]) -> DrawResult<String> {
    let mut series = Vec::new();
    for (v, _) in APPEND_VARIANTS {
        let pts: Vec<(f64, f64)> = APPEND_SIZES
            .iter()
            .enumerate()
            .filter_map(|(i, (s, bytes))| {
                find(benches, &format!("append/{s}"), v)
                    .map(|(_, b)| (i as f64, bytes * 1e9 / b.median))
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        let style = COLORS[series.len() % COLORS.len()].stroke_width(2);
        // applog's lines solid, the peers' dashed.
        let dashed = !v.starts_with("applog");
        series.push((v, style, dashed, pts));
    }
    let (lo, hi) = decades(series.iter().flat_map(|(_, _, _, p)| p.iter().map(|x| x.1)))
        .unwrap_or((1e6, 1e10));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend_area) = titled(
            &root,
            "Append without sync: payload throughput by record size (log scale)",
        )?;
        let mut chart = ChartBuilder::on(&plot)
            .x_label_area_size(50)
            .y_label_area_size(100)
            .build_cartesian_2d(
                Categories(APPEND_SIZES.len()),
                (lo..hi).log_scale().with_key_points(powers_of_ten(lo, hi)),
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .x_desc("record size")
            .y_desc("payload throughput (bytes/s)")
            .x_label_formatter(&|x| size_label(*x))
            .y_label_formatter(&|y| bytes_per_s(*y))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        for (_, style, dashed, pts) in &series {
            let points = pts.iter().copied();
            if *dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, *style))?;
            } else {
                chart.draw_series(LineSeries::new(points, *style))?;
            }
            let dot = style.color.filled();
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, dot)))?;
        }
        if series.is_empty() {
            no_data(&chart.plotting_area().strip_coord_spec())?;
        }
        let entries: Vec<(String, Mark)> = series
            .iter()
            .map(|(name, style, dashed, _)| {
                let mark = if *dashed {
                    Mark::Dashed(*style)
                } else {
                    Mark::Line(*style)
                };
                (name.to_string(), mark)
            })
            .collect();
        legend(&legend_area, &entries)?;
        root.present()?;
    }
    Ok(svg)
}

/// p50 and p99 of every latency the run recorded (durable appends, one-way tail), as
/// horizontal bars on a log scale: applog's red, the peers' blue.
pub fn latency_svg(extra: &BTreeMap<(String, String), f64>) -> DrawResult<String> {
    let names: Vec<&String> = {
        let mut v: Vec<&String> = extra
            .keys()
            .filter(|(n, k)| {
                k == "p50_ns"
                    && (n.starts_with("durable_latency/128B/")
                        || n.starts_with("tail_oneway/")
                        || n.starts_with("tail_stamped/")
                        || n.starts_with("durable/"))
            })
            .map(|(n, _)| n)
            .collect();
        v.sort_by_key(|n| natural(n));
        v
    };
    let get = |n: &String, k: &str| extra.get(&(n.clone(), k.to_owned())).copied();
    let (lo, hi) = decades(
        names
            .iter()
            .flat_map(|n| [get(n, "p50_ns"), get(n, "p99_ns")])
            .flatten(),
    )
    .unwrap_or((1e2, 1e7));
    let rows = names.len().max(1);
    // The first name on top: name i is category rows - 1 - i of the y axis.
    let row_of = |y: f64| rows.checked_sub(1 + y.round().max(0.0) as usize);

    let height = 120 + 30 * rows.max(4) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend_area) = titled(
            &root,
            "Latency percentiles (log scale): p50 dark, p99 light",
        )?;
        let mut chart = ChartBuilder::on(&plot)
            .x_label_area_size(50)
            .y_label_area_size(300)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(powers_of_ten(lo, hi)),
                Categories(rows),
            )?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .x_desc("latency (ns, µs, ms; log scale)")
            .x_label_formatter(&|x| duration_label(*x))
            .y_label_formatter(&|y| {
                row_of(*y)
                    .and_then(|i| names.get(i))
                    .map_or(String::new(), |n| n.to_string())
            })
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let mut entries = Vec::new();
        for (applog, color, who) in [(true, APPLOG_COLOR, "applog"), (false, PEER_COLOR, "peers")] {
            // The p99 bar wide and light, the p50 bar narrow and dark on top of it.
            for (key, style, inset, label) in [
                ("p99_ns", color.mix(0.3).filled(), 0.13, "p99"),
                ("p50_ns", color.filled(), 0.3, "p50"),
            ] {
                let bars: Vec<Rectangle<(f64, f64)>> = names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.contains("applog") == applog)
                    .filter_map(|(i, n)| {
                        let v = get(n, key)?;
                        let y = (rows - 1 - i) as f64;
                        Some(Rectangle::new(
                            [(lo, y - 0.5 + inset), (v.clamp(lo, hi), y + 0.5 - inset)],
                            style,
                        ))
                    })
                    .collect();
                if !bars.is_empty() {
                    chart.draw_series(bars)?;
                    entries.push((format!("{who}, {label}"), Mark::Bar(style)));
                }
            }
        }
        if names.is_empty() {
            no_data(&chart.plotting_area().strip_coord_spec())?;
        }
        legend(&legend_area, &entries)?;
        root.present()?;
    }
    Ok(svg)
}

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws the title across the top of `root` and splits the rest into the plot and, at the
/// right, the legend.
pub fn titled<'a>(root: &Area<'a>, title: &str) -> DrawResult<(Area<'a>, Area<'a>)> {
    let body = root.margin(12, 12, 12, 12).titled(title, (FONT, 22))?;
    let (w, _) = body.dim_in_pixel();
    let (plot, legend) = body.split_horizontally(w.saturating_sub(LEGEND_WIDTH));
    Ok((plot.margin(8, 0, 0, 0), legend))
}

/// The series' names, each after a sample of its line or bar, in a column at the top of
/// `area`.
pub fn legend(area: &Area<'_>, entries: &[(String, Mark)]) -> DrawResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (x, y0, step) = (20, 16, 22);
    let label = TextStyle::from((FONT, 15)).pos(Pos::new(HPos::Left, VPos::Center));
    let bottom = y0 + step * entries.len() as i32 - step / 2;
    let mut right = x + 38;
    for (name, _) in entries {
        // The estimate is plotters' (no font is read): leave room for a wider font.
        let (w, _) = area.estimate_text_size(name, &label)?;
        right = right.max(x + 38 + (f64::from(w) * 1.2) as i32 + 10);
    }
    let right = right.min(area.dim_in_pixel().0 as i32 - 1);
    area.draw(&Rectangle::new(
        [(x - 10, y0 - 14), (right, bottom)],
        WHITE.filled(),
    ))?;
    area.draw(&Rectangle::new([(x - 10, y0 - 14), (right, bottom)], GRID))?;
    for (k, (name, mark)) in entries.iter().enumerate() {
        let y = y0 + step * k as i32;
        let line = vec![(x, y), (x + 30, y)];
        match *mark {
            Mark::Line(style) => area.draw(&PathElement::new(line, style))?,
            Mark::Dashed(style) => area.draw(&DashedPathElement::new(line, 6, 4, style))?,
            Mark::Bar(style) => area.draw(&Rectangle::new([(x, y - 6), (x + 30, y + 6)], style))?,
        }
        area.draw(&Text::new(name.as_str(), (x + 38, y), label.clone()))?;
    }
    Ok(())
}

/// Says, in the middle of a plot, that the run measured none of what it shows.
pub fn no_data(area: &Area<'_>) -> DrawResult<()> {
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 18)).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        "no data in this run",
        (w as i32 / 2, h as i32 / 2),
        style,
    ))?;
    Ok(())
}

/// An axis of `n` categories at 0, 1, .. n - 1, one unit wide each, with a tick at each.
pub struct Categories(pub usize);

impl Ranged for Categories {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn range(&self) -> Range<f64> {
        -0.5..self.0 as f64 - 0.5
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = (value + 0.5) / self.0 as f64;
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.0).map(|i| i as f64).collect()
        }
    }
}

/// The powers of ten around the positive values, at least one decade apart; `None` without
/// any.
pub fn decades(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        let (lo, hi) = range.unwrap_or((v, v));
        range = Some((lo.min(v), hi.max(v)));
    }
    let (lo, hi) = range?;
    let lo = lo.max(1.0);
    let hi = hi.max(lo * 10.0);
    Some((
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    ))
}

/// The ticks of a log axis from `lo` to `hi`, both powers of ten.
pub fn powers_of_ten(lo: f64, hi: f64) -> Vec<f64> {
    let (lo_e, hi_e) = (lo.log10().round() as i32, hi.log10().round() as i32);
    (lo_e..=hi_e).map(|e| 10f64.powi(e)).collect()
}

/// The record size at a tick of the append plot's x axis.
fn size_label(x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-9 || i < 0.0 {
        return String::new();
    }
    APPEND_SIZES
        .get(i as usize)
        .map_or(String::new(), |(s, _)| (*s).to_owned())
}

/// A rate in decimal units: `1 MB/s`, `10 GB/s`.
fn bytes_per_s(v: f64) -> String {
    scaled(
        v,
        &[(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")],
        "B/s",
    )
}

/// A time given in ns: `100 ns`, `1 µs`, `10 ms`.
pub fn duration_label(ns: f64) -> String {
    scaled(ns, &[(1e9, "s"), (1e6, "ms"), (1e3, "µs")], "ns")
}

fn scaled(v: f64, units: &[(f64, &str)], base: &str) -> String {
    let (div, unit) = units
        .iter()
        .copied()
        .find(|(div, _)| v >= *div)
        .unwrap_or((1.0, base));
    let x = v / div;
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0} {unit}")
    } else {
        format!("{x} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_span_whole_decades() {
        assert_eq!(decades([].into_iter()), None);
        assert_eq!(decades([0.0, f64::NAN].into_iter()), None);
        assert_eq!(
            decades([350.0, 42_000.0].into_iter()),
            Some((100.0, 100_000.0))
        );
        // One value still gets a decade.
        assert_eq!(decades([1000.0].into_iter()), Some((1000.0, 10_000.0)));
        assert_eq!(powers_of_ten(100.0, 10_000.0), [100.0, 1000.0, 10_000.0]);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(bytes_per_s(1e7), "10 MB/s");
        assert_eq!(bytes_per_s(1e9), "1 GB/s");
        assert_eq!(bytes_per_s(100.0), "100 B/s");
        assert_eq!(duration_label(100.0), "100 ns");
        assert_eq!(duration_label(1e3), "1 µs");
        assert_eq!(duration_label(1e7), "10 ms");
        assert_eq!(size_label(0.0), "16B");
        assert_eq!(size_label(4.0), "64KiB");
        assert_eq!(size_label(0.5), "");
        assert_eq!(size_label(5.0), "");
    }
}
