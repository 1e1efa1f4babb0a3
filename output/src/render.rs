//! Rendering of map dumps for Jupyter display bundles: text/plain,
//! text/markdown, text/html and image/svg+xml.
//!
//! Keyed maps are sorted by value, largest first (ties by key, numeric keys
//! numerically), and cut at `max_rows` with a "… and N more rows (total T)"
//! note; keyed histograms are sorted by total count and cut the same way
//! ("more keys"). Histograms use bpftrace's bucket labels (`[4, 8)`,
//! `[1K, 2K)`, `(..., 0)`, `[100, ...)`) and drop empty edge buckets. Every
//! string from the data is escaped for the format it lands in.

pub mod escape;
mod html;
mod markdown;
mod plain;
mod svg;
mod view;

use serde::Serialize;

use crate::event::MapDump;
use view::View;

/// Knobs for rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RenderOptions {
    /// Most rows of a keyed map (or keys of a keyed histogram) to show.
    /// Histogram buckets are capped at `max(max_rows, 66)`, so a log2
    /// histogram is never cut.
    pub max_rows: usize,
    /// Width of the SVG chart in pixels (at least 240 is used).
    pub chart_width: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            max_rows: 40,
            chart_width: 560,
        }
    }
}

/// One display bundle. `svg` is set for histograms and for keyed maps of
/// non-negative integers (counts), `None` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Bundle {
    pub plain: String,
    pub markdown: String,
    pub html: String,
    pub svg: Option<String>,
}

/// Renders one map.
pub fn render_map(dump: &MapDump, opts: &RenderOptions) -> Bundle {
    render_maps(std::slice::from_ref(dump), opts)
}

/// Renders several maps into one bundle, in order, each headed by its name.
/// The SVG stacks the charts of the maps that have one.
pub fn render_maps(dumps: &[MapDump], opts: &RenderOptions) -> Bundle {
    let views: Vec<View<'_>> = dumps.iter().map(|d| View::new(d, opts)).collect();
    let join =
        |f: fn(&View<'_>) -> String, sep: &str| views.iter().map(f).collect::<Vec<_>>().join(sep);
    let charts: Vec<svg::Chart> = views.iter().filter_map(svg::chart).collect();
    Bundle {
        plain: join(plain::render, "\n\n"),
        markdown: join(markdown::render, "\n\n"),
        html: join(html::render, "\n"),
        svg: (!charts.is_empty()).then(|| svg::render(&charts, opts.chart_width)),
    }
}
