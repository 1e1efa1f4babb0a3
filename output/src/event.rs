//! Typed events parsed from one line of `bpftrace -f json` output.
//!
//! # What bpftrace 0.17 prints (observed by running it)
//!
//! One JSON object per line, `{"type": T, "data": D}`:
//!
//! | `type` | `data` |
//! | --- | --- |
//! | `attached_probes` | `{"probes": 1}` |
//! | `printf`, `time`, `cat`, `join` | a string, verbatim (printf/time/cat carry their own `\n`; `join` has none) |
//! | `syscall` | a string: output of `system()` (needs `--unsafe`; not tested here) |
//! | `value` | any JSON: `print(5)` → `5`, `print("s")` → `"s"`, `print((1,"a"))` → `[1,"a"]` |
//! | `lost_events` | `{"events": 11631}` (provoked with a 1-page perf buffer and a stalled reader) |
//! | `map` | `{"@c": {"a": 1, "b": 2}}` keyed; `{"@v": 7}` scalar (also count/sum/min/max, negative ints, strings, tuples as arrays `[1,"two"]`, nested `[1,[2,"x"],"y"]`) |
//! | `hist` | `{"@h": [bucket, ...]}`, keyed `{"@hk": {"x": [bucket, ...]}}`; all-zero (after `zero()`) → `[]` |
//! | `stats` | `stats()`: `{"@s": {"count": 1, "average": 10, "total": 10}}`, keyed `{"@ks": {"a": {...}}}`; **`avg()` also uses type `stats`** with plain ints: `{"@a": 7}`, `{"@ka": {"y": -9, "x": 3}}` |
//!
//! One exception: `helper_error` (with `-k`) has no `data`; its payload is at
//! the top level: `{"type": "helper_error", "helper": "map_update_elem",
//! "retcode": -7, "line": 1, "col": 18}`. It becomes
//! [`OutputEvent::Unknown`] whose `data` holds those extra members.
//!
//! Buckets are `{"min": 4, "max": 7, "count": 1}` (inclusive bounds). A
//! `hist()` bucket for negative values is `{"max": -1, "count": n}` (no
//! `min`); the bucket for 0 is `{"min": 0, "max": 0}`. `lhist(v, min, max,
//! step)` has a below-range bucket `{"max": min-1, "count"}` and an
//! above-range bucket `{"min": max, "count"}` (no `max`). bpftrace trims
//! leading and trailing zero buckets itself.
//!
//! Keys of multi-key maps are joined with `,` (`@k[1,"a"]` → `"1,a"`; a
//! string key containing a comma is indistinguishable). `kstack` keys are
//! multi-line strings starting with `\n`. The key order is bpftrace's (not
//! sorted); we keep it.
//!
//! Maps with no elements are not printed at all (neither by `print(@e)` nor
//! at exit), except an unkeyed `count()` which prints `0`; `zero()`ed
//! keyed maps print their keys with 0 / `[]` / zero stats.
//!
//! Quirks we handle or tolerate:
//! * Non-ASCII bytes are escaped as `\uffffffc3` (sign-extended `char`); we
//!   repair that before parsing (see `json::repair_signed_escapes`).
//! * Some value types are printed unquoted and make the line invalid JSON,
//!   e.g. `strftime()` stored in a map: `{"@t": 00:10}`. Such lines give
//!   [`ParseError::NotJson`] and are best shown as text.
//! * Before the exit-time map dump bpftrace prints two empty lines; empty
//!   lines parse to no events.
//! * With `-c CMD`, the command's own stdout is interleaved as plain text.

use std::borrow::Cow;

use serde::Serialize;

use crate::json::{repair_signed_escapes, Envelope, Json};

/// One event from bpftrace's JSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OutputEvent {
    /// `attached_probes`: number of probes attached.
    AttachedProbes(u64),
    /// `printf` text, verbatim (includes its own newlines).
    Printf(String),
    /// `time()` text (its format string's newline included).
    Time(String),
    /// `cat()` file contents.
    Cat(String),
    /// `join()` text, without a trailing newline.
    Join(String),
    /// A map dump (`map`, `hist` or `stats` event), one per map name.
    Map(MapDump),
    /// `value` events: `print()` of a non-map value.
    Value(serde_json::Value),
    /// `lost_events`: events dropped because the perf buffer was full.
    LostEvents(u64),
    /// Any other event type (e.g. `helper_error`, `syscall`), or a known type
    /// whose `data` has an unexpected shape. Never fails on something new.
    ///
    /// `data` is the `data` member; if the object has other members besides
    /// `type`, `data` is instead an object of all members but `type`.
    Unknown {
        kind: String,
        data: serde_json::Value,
    },
}

/// One map from a `map`/`hist`/`stats` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapDump {
    /// The map's name including `@` (`"@c"`; the anonymous map is `"@"`).
    pub name: String,
    pub value: MapValue,
}

/// The contents of a map, by shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MapValue {
    /// Unkeyed map: `@v = 7`, `@a = avg(x)`, `@t = (1, "two")`.
    Scalar(Scalar),
    /// Keyed map, in bpftrace's order. Multi-keys are joined with `,`.
    /// Keyed `avg()` maps land here too.
    Keyed(Vec<(String, Scalar)>),
    /// `hist()`/`lhist()`, buckets ascending.
    Hist(Vec<Bucket>),
    /// Keyed `hist()`/`lhist()`, in bpftrace's key order.
    KeyedHist(Vec<(String, Vec<Bucket>)>),
    /// `stats()`.
    Stats(Stats),
    /// Keyed `stats()`, in bpftrace's key order.
    KeyedStats(Vec<(String, Stats)>),
}

/// A map value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Scalar {
    /// Integers: counts, sums, min/max/avg, plain values (signed or up to u64::MAX).
    Int(i128),
    /// Strings: `comm`, `str()`, `ksym()`, stacks...
    Str(String),
    /// Anything else, e.g. tuples (JSON arrays like `[1,"two"]`).
    Other(serde_json::Value),
}

/// One histogram bucket; bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// `None` for the open-ended below-range bucket (hist's negative bucket,
    /// lhist's below-`min` bucket).
    pub min: Option<i128>,
    /// `None` for lhist's open-ended above-`max` bucket.
    pub max: Option<i128>,
    pub count: u64,
}

/// The value of a `stats()` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    pub count: u64,
    pub average: i128,
    pub total: i128,
}

/// Why a line could not be turned into events. Any error means: show the
/// line to the user as plain text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is not a bpftrace JSON event: not JSON at all (bpftrace or a
    /// `-c` command printing plain text), malformed JSON (bpftrace printing an
    /// unquoted value), or JSON that is not an object with a string `type`.
    #[error("not a bpftrace JSON event ({reason}): {line}")]
    NotJson {
        /// The line as given (untrimmed).
        line: String,
        /// What the JSON parser said.
        reason: String,
    },
}

impl ParseError {
    /// The offending line, to be shown as text.
    pub fn line(&self) -> &str {
        match self {
            ParseError::NotJson { line, .. } => line,
        }
    }
}

/// Parses one line of `bpftrace -f json` output.
///
/// Empty/whitespace lines → `Ok(vec![])`. A line that is not a JSON event →
/// `Err(ParseError::NotJson{..})` (bpftrace sometimes prints plain text on
/// stdout); the caller shows it as text. Never panics.
///
/// Returns a `Vec` because one `map`/`hist`/`stats` object could name
/// several maps (bpftrace 0.17 always prints one per line).
pub fn parse_line(line: &str) -> Result<Vec<OutputEvent>, ParseError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let repaired = repair_signed_escapes(trimmed);
    let text = repaired.as_deref().unwrap_or(trimmed);
    // The envelope borrows `type` and parses `data` straight into its final
    // form, so a printf line costs one pass and one String allocation.
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| ParseError::NotJson {
        line: line.to_owned(),
        reason: e.to_string(),
    })?;
    let kind = env.kind.unwrap_or_default();
    if !env.extra.is_empty() {
        return Ok(vec![unknown(&kind, env.data, env.extra)]);
    }
    let Some(data) = env.data else {
        return Ok(vec![unknown(&kind, None, Vec::new())]);
    };
    let event = match (kind.as_ref(), data) {
        // `system()` output arrives as "syscall" in 0.17; it is printed text like printf.
        ("printf" | "syscall", Json::Str(s)) => OutputEvent::Printf(s.into_owned()),
        ("time", Json::Str(s)) => OutputEvent::Time(s.into_owned()),
        ("cat", Json::Str(s)) => OutputEvent::Cat(s.into_owned()),
        ("join", Json::Str(s)) => OutputEvent::Join(s.into_owned()),
        ("value", data) => OutputEvent::Value(data.into_value()),
        ("attached_probes", data) => match single_count(&data, "probes") {
            Some(n) => OutputEvent::AttachedProbes(n),
            None => unknown(&kind, Some(data), Vec::new()),
        },
        ("lost_events", data) => match single_count(&data, "events") {
            Some(n) => OutputEvent::LostEvents(n),
            None => unknown(&kind, Some(data), Vec::new()),
        },
        ("map" | "hist" | "stats", Json::Obj(maps)) => {
            // Check every map's shape first so that a bad one turns the
            // whole event into Unknown without losing data; then move the
            // strings into place without copying.
            let shapes: Option<Vec<Shape>> = maps.iter().map(|(_, v)| shape(&kind, v)).collect();
            return Ok(match shapes {
                Some(shapes) => maps
                    .into_iter()
                    .zip(shapes)
                    .map(|((name, v), shape)| {
                        OutputEvent::Map(MapDump {
                            name: name.into_owned(),
                            value: convert(shape, v),
                        })
                    })
                    .collect(),
                None => vec![unknown(&kind, Some(Json::Obj(maps)), Vec::new())],
            });
        }
        (_, data) => unknown(&kind, Some(data), Vec::new()),
    };
    Ok(vec![event])
}

fn unknown(kind: &str, data: Option<Json<'_>>, extra: Vec<(String, Json<'_>)>) -> OutputEvent {
    let data = if extra.is_empty() {
        data.unwrap_or(Json::Null)
    } else {
        let mut members: Vec<_> = extra.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect();
        if let Some(d) = data {
            members.push((Cow::Borrowed("data"), d));
        }
        Json::Obj(members)
    };
    OutputEvent::Unknown {
        kind: kind.to_owned(),
        data: data.into_value(),
    }
}

/// `{"<field>": N}` → N.
fn single_count(data: &Json<'_>, field: &str) -> Option<u64> {
    match data {
        Json::Obj(members) => match members.as_slice() {
            [(k, v)] if k == field => as_u64(v),
            _ => None,
        },
        _ => None,
    }
}

fn as_int(v: &Json<'_>) -> Option<i128> {
    match v {
        Json::Int(i) => Some(*i),
        _ => None,
    }
}

fn as_u64(v: &Json<'_>) -> Option<u64> {
    as_int(v).and_then(|i| u64::try_from(i).ok())
}

fn scalar(v: Json<'_>) -> Scalar {
    match v {
        Json::Int(i) => Scalar::Int(i),
        Json::Str(s) => Scalar::Str(s.into_owned()),
        other => Scalar::Other(other.into_value()),
    }
}

/// The shape of one map's data.
#[derive(Clone, Copy)]
enum Shape {
    Scalar,
    Keyed,
    Hist,
    KeyedHist,
    Stats,
    KeyedStats,
}

/// Decides the shape of one map's data given the event type; `None` when it
/// fits no known shape.
fn shape(kind: &str, v: &Json<'_>) -> Option<Shape> {
    let all = |members: &[(Cow<'_, str>, Json<'_>)], ok: &dyn Fn(&Json<'_>) -> bool| {
        members.iter().all(|(_, v)| ok(v))
    };
    match (kind, v) {
        ("map", Json::Obj(_)) => Some(Shape::Keyed),
        ("map", _) => Some(Shape::Scalar),
        ("hist", Json::Arr(buckets)) => buckets
            .iter()
            .all(|b| bucket_of(b).is_some())
            .then_some(Shape::Hist),
        ("hist", Json::Obj(members)) => all(members, &|v| match v {
            Json::Arr(b) => b.iter().all(|b| bucket_of(b).is_some()),
            _ => false,
        })
        .then_some(Shape::KeyedHist),
        // avg(): a plain int under type "stats".
        ("stats", Json::Int(_)) => Some(Shape::Scalar),
        ("stats", Json::Obj(members)) => {
            // A stats object has exactly count/average/total. (A keyed
            // avg() map with exactly those three keys would be taken for
            // stats(); we accept that ambiguity.)
            if stats_of(v).is_some() {
                Some(Shape::Stats)
            } else if all(members, &|v| matches!(v, Json::Int(_))) {
                Some(Shape::Keyed)
            } else {
                all(members, &|v| stats_of(v).is_some()).then_some(Shape::KeyedStats)
            }
        }
        _ => None,
    }
}

/// Builds the map value; `v` has been checked to have `shape`, so the
/// `filter_map`s below drop nothing.
fn convert(shape: Shape, v: Json<'_>) -> MapValue {
    fn members(v: Json<'_>) -> Vec<(Cow<'_, str>, Json<'_>)> {
        match v {
            Json::Obj(m) => m,
            _ => Vec::new(),
        }
    }
    let buckets = |v: &Json<'_>| match v {
        Json::Arr(items) => items.iter().filter_map(bucket_of).collect(),
        _ => Vec::new(),
    };
    match shape {
        Shape::Scalar => MapValue::Scalar(scalar(v)),
        Shape::Keyed => MapValue::Keyed(
            members(v)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), scalar(v)))
                .collect(),
        ),
        Shape::Hist => MapValue::Hist(buckets(&v)),
        Shape::KeyedHist => MapValue::KeyedHist(
            members(v)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), buckets(&v)))
                .collect(),
        ),
        Shape::Stats => MapValue::Stats(stats_of(&v).unwrap_or_default()),
        Shape::KeyedStats => MapValue::KeyedStats(
            members(v)
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_owned(), stats_of(&v)?)))
                .collect(),
        ),
    }
}

fn bucket_of(v: &Json<'_>) -> Option<Bucket> {
    let Json::Obj(members) = v else { return None };
    let (mut min, mut max, mut count) = (None, None, None);
    for (k, v) in members {
        // Unknown members are ignored so that a future field does not turn
        // every histogram into an Unknown event.
        match k.as_ref() {
            "min" => min = Some(as_int(v)?),
            "max" => max = Some(as_int(v)?),
            "count" => count = Some(as_u64(v)?),
            _ => {}
        }
    }
    Some(Bucket {
        min,
        max,
        count: count?,
    })
}

fn stats_of(v: &Json<'_>) -> Option<Stats> {
    let Json::Obj(members) = v else { return None };
    if members.len() != 3 {
        return None;
    }
    let (mut count, mut average, mut total) = (None, None, None);
    for (k, v) in members {
        match k.as_ref() {
            "count" => count = Some(as_u64(v)?),
            "average" => average = Some(as_int(v)?),
            "total" => total = Some(as_int(v)?),
            _ => return None,
        }
    }
    Some(Stats {
        count: count?,
        average: average?,
        total: total?,
    })
}
