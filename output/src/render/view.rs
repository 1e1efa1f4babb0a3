//! Format-neutral preparation of a map for display: sorting, truncation,
//! histogram trimming and bucket labels. Every output format renders a `View`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use crate::event::{Bucket, MapDump, MapValue, Scalar, Stats};

use super::RenderOptions;

/// log2 `hist()` has at most 66 buckets (negative, 0, 1, 2^1..2^63); never
/// cut one short, whatever `max_rows` says. Only huge `lhist()`s get capped.
const MIN_BUCKET_CAP: usize = 66;

/// A map ready to be rendered.
pub(crate) struct View<'a> {
    pub(crate) name: &'a str,
    pub(crate) body: Body<'a>,
}

pub(crate) enum Body<'a> {
    Scalar(&'a Scalar),
    Keyed {
        rows: Vec<(&'a str, &'a Scalar)>,
        more: Option<More>,
    },
    Stats(&'a Stats),
    KeyedStats {
        rows: Vec<(&'a str, &'a Stats)>,
        more: Option<More>,
    },
    Hist(HistView),
    KeyedHist {
        sections: Vec<(&'a str, HistView)>,
        more: Option<More>,
    },
}

/// A histogram after trimming empty edge buckets.
pub(crate) struct HistView {
    pub(crate) rows: Vec<HistRow>,
    /// Largest count among the shown rows (bar scale).
    pub(crate) max: u64,
    pub(crate) more: Option<More>,
}

pub(crate) struct HistRow {
    /// bpftrace's label, e.g. `[4, 8)`, `[1K, 2K)`, `(..., 0)`, `[100, ...)`.
    pub(crate) label: String,
    pub(crate) count: u64,
}

/// "… and N more rows (total T)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct More {
    pub(crate) hidden: usize,
    pub(crate) total: usize,
    pub(crate) noun: &'static str,
}

impl fmt::Display for More {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "… and {} more {} (total {})",
            self.hidden, self.noun, self.total
        )
    }
}

impl<'a> View<'a> {
    pub(crate) fn new(dump: &'a MapDump, opts: &RenderOptions) -> Self {
        let body = match &dump.value {
            MapValue::Scalar(s) => Body::Scalar(s),
            MapValue::Keyed(rows) => {
                let mut rows: Vec<(&str, &Scalar)> =
                    rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
                rows.sort_by(|a, b| scalar_desc(a.1, b.1).then_with(|| key_cmp(a.0, b.0)));
                let more = truncate(&mut rows, opts.max_rows, "rows");
                Body::Keyed { rows, more }
            }
            MapValue::Stats(s) => Body::Stats(s),
            MapValue::KeyedStats(rows) => {
                let mut rows: Vec<(&str, &Stats)> =
                    rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
                // Most-observed first: count, then total, then key.
                rows.sort_by(|a, b| {
                    b.1.count
                        .cmp(&a.1.count)
                        .then_with(|| b.1.total.cmp(&a.1.total))
                        .then_with(|| key_cmp(a.0, b.0))
                });
                let more = truncate(&mut rows, opts.max_rows, "rows");
                Body::KeyedStats { rows, more }
            }
            MapValue::Hist(buckets) => Body::Hist(HistView::new(buckets, opts)),
            MapValue::KeyedHist(keyed) => {
                let mut keyed: Vec<(&str, &[Bucket], u128)> = keyed
                    .iter()
                    .map(|(k, b)| {
                        (
                            k.as_str(),
                            b.as_slice(),
                            b.iter().map(|b| u128::from(b.count)).sum(),
                        )
                    })
                    .collect();
                // Busiest keys first, so that capping keeps the interesting ones.
                keyed.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| key_cmp(a.0, b.0)));
                let more = truncate(&mut keyed, opts.max_rows, "keys");
                let sections = keyed
                    .into_iter()
                    .map(|(k, b, _)| (k, HistView::new(b, opts)))
                    .collect();
                Body::KeyedHist { sections, more }
            }
        };
        View {
            name: &dump.name,
            body,
        }
    }
}

impl HistView {
    fn new(buckets: &[Bucket], opts: &RenderOptions) -> Self {
        let log2 = buckets.iter().all(is_log2_bucket);
        // Trim empty leading/trailing buckets as bpftrace does (it already
        // does so in JSON, but input may come from elsewhere).
        let first = buckets.iter().position(|b| b.count > 0);
        let last = buckets.iter().rposition(|b| b.count > 0);
        let shown = match (first, last) {
            (Some(f), Some(l)) => &buckets[f..=l],
            _ => &[][..],
        };
        let mut rows: Vec<HistRow> = shown
            .iter()
            .map(|b| HistRow {
                label: bucket_label(b, log2),
                count: b.count,
            })
            .collect();
        let more = truncate(&mut rows, opts.max_rows.max(MIN_BUCKET_CAP), "buckets");
        let max = rows.iter().map(|r| r.count).max().unwrap_or(0);
        HistView { rows, max, more }
    }
}

/// Keeps the first `cap` items; says how many were dropped.
fn truncate<T>(items: &mut Vec<T>, cap: usize, noun: &'static str) -> Option<More> {
    let total = items.len();
    if total <= cap {
        return None;
    }
    items.truncate(cap);
    Some(More {
        hidden: total - cap,
        total,
        noun,
    })
}

/// Integers first, largest first; everything else after, unordered here
/// (the caller breaks ties by key).
fn scalar_desc(a: &Scalar, b: &Scalar) -> Ordering {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => y.cmp(x),
        (Scalar::Int(_), _) => Ordering::Less,
        (_, Scalar::Int(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Numeric keys (pids, cpus) compare as numbers, before textual keys.
pub(crate) fn key_cmp(a: &str, b: &str) -> Ordering {
    let na = a.parse::<i128>().ok();
    let nb = b.parse::<i128>().ok();
    match (na, nb) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// How a value is shown: ints as numbers, strings verbatim, tuples like
/// bpftrace's text output `(1, two)`, records as `{ .a = 1 }`.
pub(crate) fn scalar_text(s: &Scalar) -> Cow<'_, str> {
    match s {
        Scalar::Int(i) => Cow::Owned(i.to_string()),
        Scalar::Str(s) => Cow::Borrowed(s),
        Scalar::Other(v) => {
            let mut out = String::new();
            value_text(v, &mut out);
            Cow::Owned(out)
        }
    }
}

fn value_text(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        // bpftrace's JSON writes tuples as arrays; its text shows "(a, b)".
        Value::Array(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value_text(item, out);
            }
            out.push(')');
        }
        Value::Object(fields) => {
            out.push_str("{ ");
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('.');
                out.push_str(k);
                out.push_str(" = ");
                value_text(item, out);
            }
            out.push_str(" }");
        }
    }
}

/// True if the bucket has a shape only `hist()` produces or shares.
fn is_log2_bucket(b: &Bucket) -> bool {
    match (b.min, b.max) {
        (None, Some(-1)) | (Some(0), Some(0)) | (Some(1), Some(1)) => true,
        (Some(lo), Some(hi)) => {
            lo >= 2 && (lo & (lo - 1)) == 0 && lo.checked_mul(2).map(|d| d - 1) == Some(hi)
        }
        _ => false,
    }
}

/// bpftrace's text label of a bucket. Bounds are inclusive in JSON and
/// half-open in labels.
fn bucket_label(b: &Bucket, log2: bool) -> String {
    if log2 {
        return match (b.min, b.max) {
            (None, _) => "(..., 0)".to_owned(),
            (Some(0), Some(0)) => "[0]".to_owned(),
            (Some(1), Some(1)) => "[1]".to_owned(),
            (Some(lo), Some(hi)) => {
                format!("[{}, {})", pow2_label(lo), pow2_label(hi.saturating_add(1)))
            }
            // Unreachable for log2-shaped buckets; keep a sane label anyway.
            (Some(lo), None) => format!("[{}, ...)", pow2_label(lo)),
        };
    }
    match (b.min, b.max) {
        (None, Some(hi)) => format!("(..., {})", linear_label(hi.saturating_add(1))),
        (Some(lo), None) => format!("[{}, ...)", linear_label(lo)),
        (Some(lo), Some(hi)) => format!(
            "[{}, {})",
            linear_label(lo),
            linear_label(hi.saturating_add(1))
        ),
        (None, None) => "(..., ...)".to_owned(),
    }
}

/// `hist()` labels: powers of two with K/M/G/T suffixes (1K = 2^10).
pub(crate) fn pow2_label(n: i128) -> String {
    if n <= 0 || (n & (n - 1)) != 0 {
        return linear_label(n);
    }
    let power = n.trailing_zeros();
    let (suffix, shift) = match power {
        40.. => ("T", 40),
        30.. => ("G", 30),
        20.. => ("M", 20),
        10.. => ("K", 10),
        _ => ("", 0),
    };
    format!("{}{}", 1i128 << (power - shift), suffix)
}

/// `lhist()` labels: exact multiples of 2^20 as M, of 2^10 as K.
pub(crate) fn linear_label(n: i128) -> String {
    const KILO: i128 = 1024;
    const MEGA: i128 = 1024 * 1024;
    if n == 0 {
        "0".to_owned()
    } else if n % MEGA == 0 {
        format!("{}M", n / MEGA)
    } else if n % KILO == 0 {
        format!("{}K", n / KILO)
    } else {
        n.to_string()
    }
}

/// bpftrace's text bar: `count/max*52` `@` characters.
pub(crate) const TEXT_BAR_WIDTH: usize = 52;

/// Length of a bar of at most `width` units for `count` out of `max`.
pub(crate) fn bar_units(count: u64, max: u64, width: usize) -> usize {
    if max == 0 {
        return 0;
    }
    ((count as f64 / max as f64) * width as f64) as usize
}

/// A bar of Unicode block characters, with eighths for precision: readable
/// in HTML and Markdown without any styling.
pub(crate) fn block_bar(count: u64, max: u64, cells: usize) -> String {
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let mut eighths = bar_units(count, max, cells * 8);
    if count > 0 && eighths == 0 {
        // Make non-zero counts visible.
        eighths = 1;
    }
    let mut bar = "█".repeat(eighths / 8);
    bar.push_str(PARTIAL[eighths % 8]);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_like_bpftrace() {
        assert_eq!(pow2_label(512), "512");
        assert_eq!(pow2_label(1024), "1K");
        assert_eq!(pow2_label(1 << 21), "2M");
        assert_eq!(pow2_label(1 << 30), "1G");
        assert_eq!(pow2_label(1 << 41), "2T");
        assert_eq!(pow2_label(1 << 64), "16777216T");
        assert_eq!(linear_label(2048), "2K");
        assert_eq!(linear_label(3072), "3K");
        assert_eq!(linear_label(1 << 30), "1024M");
        assert_eq!(linear_label(1000), "1000");
        assert_eq!(linear_label(-2048), "-2K");
    }

    #[test]
    fn bucket_shapes() {
        let b = |min, max| Bucket { min, max, count: 1 };
        assert_eq!(bucket_label(&b(None, Some(-1)), true), "(..., 0)");
        assert_eq!(bucket_label(&b(Some(0), Some(0)), true), "[0]");
        assert_eq!(bucket_label(&b(Some(1), Some(1)), true), "[1]");
        assert_eq!(bucket_label(&b(Some(1024), Some(2047)), true), "[1K, 2K)");
        assert_eq!(bucket_label(&b(None, Some(9)), false), "(..., 10)");
        assert_eq!(bucket_label(&b(Some(100), None), false), "[100, ...)");
        assert_eq!(bucket_label(&b(Some(2048), Some(3071)), false), "[2K, 3K)");
        assert!(is_log2_bucket(&b(Some(4), Some(7))));
        assert!(!is_log2_bucket(&b(Some(4), Some(5))));
        assert!(!is_log2_bucket(&b(Some(100), None)));
        assert!(!is_log2_bucket(&b(Some(i128::MAX), Some(i128::MAX))));
    }

    #[test]
    fn block_bars() {
        assert_eq!(block_bar(0, 10, 4), "");
        assert_eq!(block_bar(10, 10, 4), "████");
        assert_eq!(block_bar(5, 10, 3), "█▌");
        assert_eq!(block_bar(1, 1_000_000, 4), "▏");
        assert_eq!(block_bar(1, 0, 4), "▏");
    }

    #[test]
    fn keys_compare_naturally() {
        let mut keys = vec!["10", "9", "b", "a", "-1"];
        keys.sort_by(|a, b| key_cmp(a, b));
        assert_eq!(keys, ["-1", "9", "10", "a", "b"]);
    }
}
