//! Offline answers: the closest verified example, adapted only where it is
//! safe, i.e. where the example declares the literal as a parameter and the
//! request names a value of that kind unambiguously.
//!
//! What a request can name:
//! - a process name (`comm`): a quoted word (`"nginx"`, `` `nginx` ``), or the
//!   word after "process", "program", "command", "named", "called" or "for"
//!   (not a number, not a common word), at most 15 bytes of `[A-Za-z0-9._+:@-]`;
//! - a pid: "pid 1234", "pid=1234";
//! - a duration: "10 seconds", "10s", "2 minutes" (-> `duration_s`),
//!   "5 ms", "5 milliseconds" (-> `duration_ms`).
//!
//! Each value replaces the parameter's literal exactly as the example's TOML
//! declares it (`default`), once, and an integer parameter with `length_of`
//! gets the new string's byte length plus `length_adjust`. A value the
//! example cannot take is reported in `not_applied`, never forced in.

use kgent_retrieval::{Example, Hit, ParamKind, ParamValue};

/// Longest process name the kernel keeps (`TASK_COMM_LEN` - 1).
const COMM_MAX: usize = 15;

/// Words after "for"/"process"/... that are not process names.
const NOT_COMM: &[&str] = &[
    "a",
    "an",
    "the",
    "each",
    "every",
    "all",
    "any",
    "some",
    "one",
    "two",
    "three",
    "longer",
    "more",
    "less",
    "over",
    "under",
    "at",
    "up",
    "me",
    "us",
    "it",
    "this",
    "that",
    "these",
    "those",
    "process",
    "processes",
    "program",
    "programs",
    "command",
    "commands",
    "name",
    "names",
    "id",
    "ids",
    "pid",
    "pids",
    "which",
    "what",
    "who",
    "example",
    "instance",
    "file",
    "files",
    "reads",
    "writes",
    "opens",
    "calls",
    "syscalls",
    "system",
    "events",
    "while",
    "how",
    "long",
    "now",
    "later",
    "a while",
    "and",
    "or",
    "with",
    "by",
    "in",
    "on",
    "of",
    "to",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "tree",
    "group",
    "user",
    "users",
    "root",
];

/// Values a request names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestValues {
    pub comm: Option<String>,
    pub pid: Option<i64>,
    pub duration_s: Option<i64>,
    pub duration_ms: Option<i64>,
}

fn valid_comm(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= COMM_MAX
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+:@-".contains(c))
        && !word.chars().all(|c| c.is_ascii_digit())
        && !NOT_COMM.contains(&word.to_ascii_lowercase().as_str())
}

/// A quoted word: `"x"`, `` `x` ``, or `'x'` opened after a space.
fn quoted_word(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let opens = c == '"' || c == '`' || (c == '\'' && (i == 0 || chars[i - 1].is_whitespace()));
        if !opens {
            continue;
        }
        let close = c;
        let rest: String = chars[i + 1..].iter().collect();
        if let Some(end) = rest.find(close) {
            let word = &rest[..end];
            if valid_comm(word) {
                return Some(word.to_string());
            }
        }
    }
    None
}

/// Splits a number glued to a unit (`10s`, `5ms`).
fn number_unit(word: &str) -> Option<(i64, &str)> {
    let digits = word.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n = word[..digits].parse().ok()?;
    Some((n, &word[digits..]))
}

enum Unit {
    Seconds(i64),
    Millis,
}

fn unit(word: &str) -> Option<Unit> {
    match word.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => Some(Unit::Seconds(1)),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(Unit::Seconds(60)),
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Some(Unit::Millis),
        _ => None,
    }
}

impl RequestValues {
    /// The values `request` names (see the module documentation).
    pub fn from_request(request: &str) -> RequestValues {
        let mut out = RequestValues {
            comm: quoted_word(request),
            ..RequestValues::default()
        };
        let words: Vec<&str> = request
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '?' || c == '!')
            .map(|w| w.trim_end_matches('.'))
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let lower = w.to_ascii_lowercase();
            let next = words.get(i + 1).copied();
            // pid 1234 / pid=1234
            if out.pid.is_none() {
                let value = if let Some(v) = lower.strip_prefix("pid=") {
                    Some(v.to_string())
                } else if lower == "pid" {
                    next.map(str::to_string)
                } else {
                    None
                };
                if let Some(n) = value.and_then(|v| v.parse::<i64>().ok()) {
                    out.pid = Some(n);
                }
            }
            // durations: "10 seconds" or "10s"
            let duration = match number_unit(w) {
                Some((n, "")) => next.and_then(unit).map(|u| (n, u)),
                Some((n, rest)) => unit(rest).map(|u| (n, u)),
                None => None,
            };
            match duration {
                Some((n, Unit::Seconds(k))) if out.duration_s.is_none() => {
                    out.duration_s = Some(n * k)
                }
                Some((n, Unit::Millis)) if out.duration_ms.is_none() => out.duration_ms = Some(n),
                _ => {}
            }
            // process X / for X
            if out.comm.is_none()
                && matches!(
                    lower.as_str(),
                    "process" | "program" | "command" | "named" | "called" | "for"
                )
            {
                if let Some(n) = next {
                    if valid_comm(n) && number_unit(n).is_none() {
                        out.comm = Some(n.to_string());
                    }
                }
            }
        }
        out
    }
}

/// An example with the request's values in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adaptation {
    pub program: String,
    /// (parameter, new literal as written in the program).
    pub adapted: Vec<(String, String)>,
    /// Values the request names that the example cannot take, and why.
    pub not_applied: Vec<String>,
}

/// Byte ranges of code outside string literals and comments.
fn code_mask(program: &str) -> Vec<bool> {
    let b = program.as_bytes();
    let mut mask = vec![true; b.len()];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let end = (i + 1).min(b.len());
            mask[start..end].iter_mut().for_each(|m| *m = false);
            i = end;
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            let start = i;
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            mask[start..i].iter_mut().for_each(|m| *m = false);
        } else {
            i += 1;
        }
    }
    mask
}

/// Where `n` occurs as a standalone number token in code.
fn number_positions(program: &str, n: i64) -> Vec<usize> {
    let text = n.to_string();
    let mask = code_mask(program);
    let b = program.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    program
        .match_indices(&text)
        .map(|(i, _)| i)
        .filter(|&i| mask[i])
        .filter(|&i| i == 0 || !word(b[i - 1]))
        .filter(|&i| b.get(i + text.len()).is_none_or(|&c| !word(c)))
        .collect()
}

fn replace_number(program: &mut String, old: i64, new: i64) -> Result<(), String> {
    match number_positions(program, old).as_slice() {
        [at] => {
            program.replace_range(*at..*at + old.to_string().len(), &new.to_string());
            Ok(())
        }
        found => Err(format!(
            "the literal {old} occurs {} times, not once",
            found.len()
        )),
    }
}

fn replace_string(program: &mut String, old: &str, new: &str) -> Result<(), String> {
    let quoted = format!("\"{old}\"");
    let found: Vec<usize> = program.match_indices(&quoted).map(|(i, _)| i).collect();
    match found.as_slice() {
        [at] => {
            program.replace_range(*at..*at + quoted.len(), &format!("\"{new}\""));
            Ok(())
        }
        _ => Err(format!(
            "the literal {quoted} occurs {} times, not once",
            found.len()
        )),
    }
}

/// `example` with `values` substituted where it declares a parameter for them.
pub fn adapt(example: &Example, values: &RequestValues) -> Adaptation {
    let mut program = example.program.clone();
    let mut adapted = Vec::new();
    let mut not_applied = Vec::new();
    let mut used = (false, false, false, false); // comm, pid, duration_s, duration_ms
    for p in &example.parameters {
        let result = match (p.kind, &p.default) {
            (ParamKind::Comm, ParamValue::Str(old)) => match &values.comm {
                Some(new) => {
                    used.0 = true;
                    replace_string(&mut program, old, new).and_then(|()| {
                        adapted.push((p.name.clone(), new.clone()));
                        // Lengths that go with this string, as declared.
                        for q in &example.parameters {
                            if q.length_of.as_deref() == Some(p.name.as_str()) {
                                if let ParamValue::Int(old_len) = q.default {
                                    let len = new.len() as i64 + q.length_adjust.unwrap_or(0);
                                    replace_number(&mut program, old_len, len)?;
                                    adapted.push((q.name.clone(), len.to_string()));
                                }
                            }
                        }
                        Ok(())
                    })
                }
                None => Ok(()),
            },
            (ParamKind::Pid, ParamValue::Int(old)) => match values.pid {
                Some(new) => {
                    used.1 = true;
                    replace_number(&mut program, *old, new)
                        .map(|()| adapted.push((p.name.clone(), new.to_string())))
                }
                None => Ok(()),
            },
            (ParamKind::DurationS, ParamValue::Int(old)) => match values.duration_s {
                Some(new) if new > 0 => {
                    used.2 = true;
                    replace_number(&mut program, *old, new)
                        .map(|()| adapted.push((p.name.clone(), new.to_string())))
                }
                _ => Ok(()),
            },
            (ParamKind::DurationMs, ParamValue::Int(old)) => match values.duration_ms {
                Some(new) => {
                    used.3 = true;
                    replace_number(&mut program, *old, new)
                        .map(|()| adapted.push((p.name.clone(), new.to_string())))
                }
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(why) = result {
            // Leave the example as it was rather than half-adapted.
            return Adaptation {
                program: example.program.clone(),
                adapted: Vec::new(),
                not_applied: vec![format!(
                    "parameter {} of {} could not be substituted: {why}",
                    p.name, example.id
                )],
            };
        }
    }
    let id = &example.id;
    if let (Some(c), false) = (&values.comm, used.0) {
        not_applied.push(format!(
            "process name {c:?}: example {id} has no process-name parameter"
        ));
    }
    if let (Some(n), false) = (values.pid, used.1) {
        not_applied.push(format!("pid {n}: example {id} has no pid parameter"));
    }
    if let (Some(n), false) = (values.duration_s, used.2) {
        not_applied.push(format!(
            "duration {n} s: example {id} has no duration parameter"
        ));
    }
    if let (Some(n), false) = (values.duration_ms, used.3) {
        not_applied.push(format!(
            "threshold {n} ms: example {id} has no millisecond parameter"
        ));
    }
    Adaptation {
        program,
        adapted,
        not_applied,
    }
}

/// How well the best example fits the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchStrength {
    Strong,
    /// Probably not what was asked for; the reason, for the person.
    Weak(String),
}

/// Least share of the request's content words found in the example's
/// request, description and tags for a strong match.
pub const MIN_COVERAGE: f32 = 0.5;
/// With vectors, both rankings must place the example within this rank.
pub const MAX_AGREEING_RANK: usize = 3;

/// Whether `hit` (the best hit, naming `example`) is a strong match.
///
/// The fused RRF score alone says nothing absolute (it only orders one
/// search), so the threshold is on two signals that are:
/// 1. rank agreement: with a vector ranking, the example must be within the
///    top [`MAX_AGREEING_RANK`] of BM25 *and* of the vectors (two different
///    views of similarity agreeing); with BM25 alone this check is skipped;
/// 2. coverage: at least [`MIN_COVERAGE`] of the request's content words
///    (3+ letters, not common words; compared on their first 5 letters, a
///    crude stem) occur in the example's request, description or tags.
pub fn match_strength(request: &str, hit: &Hit, example: &Example) -> MatchStrength {
    if let Some(v) = hit.vector_rank {
        let b = hit.bm25_rank.unwrap_or(usize::MAX);
        if v > MAX_AGREEING_RANK || b > MAX_AGREEING_RANK {
            return MatchStrength::Weak(format!(
                "the word search and the meaning search disagree about {} (ranks {} and {v})",
                example.id,
                hit.bm25_rank.map_or("none".to_string(), |r| r.to_string())
            ));
        }
    }
    let stem = |w: &str| w.chars().take(5).collect::<String>();
    let haystack: std::collections::HashSet<String> = format!(
        "{} {} {}",
        example.request,
        example.description,
        example.tags.join(" ")
    )
    .split(|c: char| !c.is_ascii_alphanumeric())
    .map(|w| stem(&w.to_ascii_lowercase()))
    .collect();
    let words: Vec<String> = request
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
        .filter(|w| w.len() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !COMMON.contains(&w.as_str()))
        .collect();
    if words.is_empty() {
        return MatchStrength::Weak("the request has no words to match".into());
    }
    let found = words.iter().filter(|w| haystack.contains(&stem(w))).count();
    let coverage = found as f32 / words.len() as f32;
    if coverage < MIN_COVERAGE {
        let missing: Vec<&str> = words
            .iter()
            .filter(|w| !haystack.contains(&stem(w)))
            .map(String::as_str)
            .collect();
        MatchStrength::Weak(format!(
            "the closest example ({}: {:?}) covers {found} of {} words of the request; \
             it does not mention: {}",
            example.id,
            example.request,
            words.len(),
            missing.join(", ")
        ))
    } else {
        MatchStrength::Strong
    }
}

/// Words that carry no topic.
const COMMON: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "show", "which", "what", "who", "how", "print",
    "trace", "each", "every", "per", "all", "from", "into", "when", "while", "are", "was", "then",
    "list", "display", "watch", "seconds", "second", "minutes", "minute", "want", "see", "tell",
    "give", "can", "you", "please", "me", "its", "their", "them", "only", "any",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_requests() {
        let v = RequestValues::from_request("count opens by \"nginx\" for 10 seconds");
        assert_eq!(v.comm.as_deref(), Some("nginx"));
        assert_eq!(v.duration_s, Some(10));
        let v = RequestValues::from_request("syscall latency for redis for 2 minutes");
        assert_eq!(v.comm.as_deref(), Some("redis"));
        assert_eq!(v.duration_s, Some(120));
        let v = RequestValues::from_request("what does pid 1234 open, reads slower than 5ms");
        assert_eq!(v.pid, Some(1234));
        assert_eq!(v.duration_ms, Some(5));
        assert_eq!(v.comm, None);
        let v = RequestValues::from_request("count syscalls for each process");
        assert_eq!(v.comm, None);
    }

    #[test]
    fn numbers_are_replaced_as_tokens_outside_strings() {
        let mut p = "interval:s:10 { printf(\"10\\n\"); print(@m, 100); exit(); }".to_string();
        replace_number(&mut p, 10, 3).unwrap();
        assert_eq!(
            p,
            "interval:s:3 { printf(\"10\\n\"); print(@m, 100); exit(); }"
        );
        assert!(replace_number(&mut "a(1, 1)".to_string(), 1, 2).is_err());
    }
}
