//! Hand-written SVG line plots: hit ratio against cache size, one line per
//! cache. A few dozen lines of SVG text keep the simulator free of a
//! plotting dependency and its compile time.

use std::fmt::Write as _;

/// One line of the plot.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(capacity, hit ratio)` points, in increasing capacity.
    pub points: Vec<(f64, f64)>,
}

/// Image width in pixels.
const WIDTH: f64 = 780.0;
/// Image height in pixels.
const HEIGHT: f64 = 460.0;
/// Left edge of the plot area.
const LEFT: f64 = 64.0;
/// Right edge of the plot area (the legend is to its right).
const RIGHT: f64 = 600.0;
/// Top edge of the plot area.
const TOP: f64 = 56.0;
/// Bottom edge of the plot area.
const BOTTOM: f64 = 400.0;

/// Line colours, cycled; OPT is drawn in black.
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG document plotting `series`; `ticks` are `(capacity, label)` for
/// the x axis (log scale when the sizes span more than 4x).
pub fn svg(title: &str, subtitle: &str, ticks: &[(f64, String)], series: &[Series]) -> String {
    let xs: Vec<f64> = ticks.iter().map(|t| t.0.max(1.0)).collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo * 0.5, lo * 2.0)
    };
    let log = hi / lo > 4.0;
    let fx = |x: f64| {
        let t = if log {
            (x.max(1.0).ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (x - lo) / (hi - lo)
        };
        LEFT + 20.0 + t * (RIGHT - LEFT - 40.0)
    };
    let top_y = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let y_max = if top_y > 0.5 {
        1.0
    } else {
        ((top_y * 10.0).ceil() / 10.0).max(0.1)
    };
    let fy = |y: f64| BOTTOM - (y / y_max) * (BOTTOM - TOP);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="42" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    // Horizontal grid and y ticks.
    let step = if y_max <= 0.3 { 0.05 } else { 0.1 };
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        let py = fy(y);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{y:.2}</text>"##,
            LEFT - 6.0,
            py + 4.0
        );
        y += step;
    }
    // x ticks.
    for (x, label) in ticks {
        let px = fx(x.max(1.0));
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{BOTTOM}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            BOTTOM + 18.0,
            esc(label)
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        out,
        r#"<path d="M{LEFT},{TOP} V{BOTTOM} H{RIGHT}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">cache size (capacity, {} scale)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 44.0,
        if log { "log" } else { "linear" }
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">hit ratio</text>"#,
        (TOP + BOTTOM) / 2.0
    );
    // One polyline per series, and its legend entry.
    let mut colour = 0;
    for (i, s) in series.iter().enumerate() {
        let (stroke, dash) = if s.name == "OPT" {
            ("#000000", r#" stroke-dasharray="6 4""#)
        } else {
            colour += 1;
            (COLOURS[(colour - 1) % COLOURS.len()], "")
        };
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"{dash}/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{stroke}"/>"#
            );
        }
        let ly = TOP + 8.0 + i as f64 * 20.0;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{stroke}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            RIGHT + 20.0,
            RIGHT + 44.0,
            RIGHT + 50.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}
