//! The plots of `ipc.md`, in the style of `plots`: one row per append variant or transport,
//! with an ext4 bar above a tmpfs bar and each bar's value at its end.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ipc::{append_variants, median, throughput_transports, FILE_SYSTEMS};
use crate::plots::{
    decades, duration_label, legend, no_data, powers_of_ten, titled, Categories, DrawResult, Mark,
    COLORS, FONT, GRID,
};
use crate::sections::time;
use crate::Run;

/// The bars' colors: ext4, tmpfs.
const FS_COLORS: [RGBColor; 2] = [COLORS[2], COLORS[1]];

/// Rows of paired bars, one value per file system (or none).
struct Bars<'a> {
    title: &'a str,
    x_desc: &'a str,
    rows: Vec<String>,
    values: Vec<[Option<f64>; 2]>,
    /// The text at the end of a bar.
    value_label: fn(f64) -> String,
}

/// ns per 128 B append (log scale), per variant, ext4 and tmpfs.
pub fn append_svg(runs: [&Run; 2]) -> DrawResult<String> {
    let variants = append_variants(runs);
    let bars = Bars {
        title: "Append 128 B without sync: time per record, ext4 and tmpfs (log scale)",
        x_desc: "time per append (log scale; shorter is faster)",
        rows: variants.iter().map(|(v, _)| v.clone()).collect(),
        values: variants
            .iter()
            .map(|(v, _)| runs.map(|r| median(r, "append/128B", v)))
            .collect(),
        value_label: time,
    };
    let (lo, hi) = decades(bars.values.iter().flatten().flatten().copied()).unwrap_or((1.0, 1e4));
    draw(
        &bars,
        (lo..hi).log_scale().with_key_points(powers_of_ten(lo, hi)),
        lo,
        &|x| duration_label(*x),
    )
}

/// Millions of 128 B messages per second (linear scale), per transport, ext4 and tmpfs.
pub fn throughput_svg(runs: [&Run; 2]) -> DrawResult<String> {
    let transports = throughput_transports(runs);
    let bars = Bars {
        title: "Throughput between processes, 128 B messages, ext4 and tmpfs",
        x_desc: "million messages per second (longer is faster)",
        rows: transports.clone(),
        values: transports
            .iter()
            .map(|t| runs.map(|r| median(r, "tail_throughput", t).map(|ns| 1e3 / ns)))
            .collect(),
        value_label: |m| format!("{m:.2} M/s"),
    };
    let max = bars
        .values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    // Room at the right for the values.
    let hi = if max > 0.0 { max * 1.2 } else { 1.0 };
    draw(&bars, 0.0..hi, 0.0, &|x| format!("{x}"))
}

/// Draws `bars` on the x axis `x`, bars starting at `origin`.
fn draw<X>(
    bars: &Bars<'_>,
    x: X,
    origin: f64,
    x_label: &dyn Fn(&f64) -> String,
) -> DrawResult<String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let rows = bars.rows.len().max(1);
    // The first row on top: row i is category rows - 1 - i of the y axis.
    let row_of = |y: f64| rows.checked_sub(1 + y.round().max(0.0) as usize);
    let height = 130 + 44 * rows.max(3) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend_area) = titled(&root, bars.title)?;
        let mut chart = ChartBuilder::on(&plot)
            .x_label_area_size(50)
            .y_label_area_size(200)
            .build_cartesian_2d(x, Categories(rows))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_desc(bars.x_desc)
            .x_label_formatter(x_label)
            .y_label_formatter(&|y| {
                row_of(*y)
                    .and_then(|i| bars.rows.get(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let label = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Left, VPos::Center));
        let mut entries = Vec::new();
        for (k, (fs, color)) in FILE_SYSTEMS.iter().zip(FS_COLORS).enumerate() {
            // ext4 in the upper half of the row, tmpfs in the lower.
            let (top, bottom) = if k == 0 { (0.42, 0.04) } else { (-0.04, -0.42) };
            let style = color.filled();
            let mut any = false;
            for (i, vals) in bars.values.iter().enumerate() {
                let Some(v) = vals[k] else { continue };
                any = true;
                let y = (rows - 1 - i) as f64;
                chart.draw_series([Rectangle::new([(origin, y + bottom), (v, y + top)], style)])?;
                chart.draw_series([EmptyElement::at((v, y + (top + bottom) / 2.0))
                    + Text::new((bars.value_label)(v), (4, 0), label.clone())])?;
            }
            if any {
                entries.push(((*fs).to_owned(), Mark::Bar(style)));
            }
        }
        if bars.rows.is_empty() {
            no_data(&chart.plotting_area().strip_coord_spec())?;
        }
        legend(&legend_area, &entries)?;
        root.present()?;
    }
    Ok(svg)
}
