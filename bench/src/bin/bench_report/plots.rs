//! The plots: append throughput by record size, and latency percentiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{find, natural, Bench, APPEND_SIZES, APPEND_VARIANTS};

const COLORS: [&str; 9] = [
    "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#8c564b", "#17becf", "#9467bd", "#7f7f7f",
    "#000000",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Payload throughput (bytes/s, log scale) by record size, one line per variant.
pub fn append_svg(benches: &[Bench]) -> String {
    let (w, h) = (900.0, 520.0);
    let (left, right, top, bottom) = (80.0, 300.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let mut series = Vec::new();
    for (v, _) in APPEND_VARIANTS {
        let pts: Vec<(usize, f64)> = APPEND_SIZES
            .iter()
            .enumerate()
            .filter_map(|(i, (s, bytes))| {
                find(benches, &format!("append/{s}"), v).map(|(_, b)| (i, bytes * 1e9 / b.median))
            })
            .collect();
        if !pts.is_empty() {
            series.push((v, pts));
        }
    }
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_e, hi_e) = (lo.log10().floor(), hi.log10().ceil());
    let y = |v: f64| top + ph * (1.0 - (v.log10() - lo_e) / (hi_e - lo_e));
    let x = |i: usize| left + pw * (i as f64 + 0.5) / APPEND_SIZES.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="15">Append without sync: payload throughput by record size (log scale)</text>"#
    );
    let mut e = lo_e;
    while e <= hi_e {
        let yy = y(10f64.powf(e));
        let label = match e as i32 {
            6 => "1 MB/s".to_owned(),
            7 => "10 MB/s".to_owned(),
            8 => "100 MB/s".to_owned(),
            9 => "1 GB/s".to_owned(),
            10 => "10 GB/s".to_owned(),
            11 => "100 GB/s".to_owned(),
            n => format!("1e{n} B/s"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0
        );
        e += 1.0;
    }
    for (i, (name, _)) in APPEND_SIZES.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
            x(i),
            top + ph + 20.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">record size</text>"#,
        left + pw / 2.0,
        top + ph + 42.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let dash = if name.starts_with("applog") {
            ""
        } else {
            r#" stroke-dasharray="5,3""#
        };
        let path: Vec<String> = pts
            .iter()
            .map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (i, v) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(*i),
                y(*v)
            );
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            w - right + 15.0,
            w - right + 45.0,
            w - right + 52.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// p50 and p99 of every latency the run recorded (durable appends, one-way tail), as
/// horizontal bars on a log scale.
pub fn latency_svg(extra: &BTreeMap<(String, String), f64>) -> String {
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
        v.dedup();
        v.sort_by_key(|n| natural(n));
        v
    };
    let get = |n: &String, k: &str| extra.get(&(n.clone(), k.to_owned())).copied();
    let (w, left, right, top, row) = (900.0, 330.0, 30.0, 50.0, 30.0);
    let h = top + row * names.len().max(1) as f64 + 50.0;
    let pw = w - left - right;
    let vals: Vec<f64> = names
        .iter()
        .flat_map(|n| [get(n, "p50_ns"), get(n, "p99_ns")])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = vals.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_e, hi_e) = (lo.log10().floor(), hi.log10().ceil());
    let x = |v: f64| left + pw * (v.max(1.0).log10() - lo_e) / (hi_e - lo_e);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="20" y="22" font-size="15">Latency percentiles (log scale): p50 dark, p99 light</text>"##
    );
    let mut e = lo_e;
    while e <= hi_e {
        let xx = x(10f64.powf(e));
        let label = match e as i32 {
            2 => "100 ns",
            3 => "1 µs",
            4 => "10 µs",
            5 => "100 µs",
            6 => "1 ms",
            7 => "10 ms",
            8 => "100 ms",
            _ => "",
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#ddd"/><text x="{xx:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            h - 40.0,
            h - 22.0
        );
        e += 1.0;
    }
    for (i, n) in names.iter().enumerate() {
        let y0 = top + row * i as f64;
        let color = if n.contains("applog") {
            "#d62728"
        } else {
            "#1f77b4"
        };
        if let Some(p99) = get(n, "p99_ns") {
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.3"/>"#,
                y0 + 4.0,
                (x(p99) - left).max(1.0),
                row - 8.0
            );
        }
        if let Some(p50) = get(n, "p50_ns") {
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{}" fill="{color}"/>"#,
                y0 + 9.0,
                (x(p50) - left).max(1.0),
                row - 18.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + row / 2.0 + 4.0,
            esc(n)
        );
    }
    s.push_str("</svg>\n");
    s
}
