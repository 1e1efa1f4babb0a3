//! What [`crate::verify`] returns: a verdict per `assert`, notes on what was
//! not modelled exactly, timings. Serialisable for `--json` output and the
//! LLM feedback loop; `Display` for people.

use std::fmt;
use std::time::Duration;

use kgent_frontend::Span;
use serde::{Deserialize, Serialize};

use crate::eval::InputValue;

/// Durations serialise as milliseconds (a float).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

/// Spans serialise as `[start, end]` byte offsets.
mod span_pair {
    use kgent_frontend::Span;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(span: &Span, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq([span.start, span.end])
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let [start, end] = <[u32; 2]>::deserialize(d)?;
        Ok(Span::new(start, end))
    }
}

/// The result of verifying one program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// One per `assert` in the program, in source order.
    pub assertions: Vec<AssertionResult>,
    /// What was not modelled exactly, by place: unknown field types, calls
    /// treated as uninterpreted, constructs approximated. Each note once.
    pub notes: Vec<String>,
    /// Solver queries made.
    pub queries: u32,
    #[serde(with = "millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

impl VerifyReport {
    pub fn proved(&self) -> bool {
        self.assertions
            .iter()
            .all(|a| matches!(a.verdict, Verdict::Proved))
    }

    pub fn refuted(&self) -> impl Iterator<Item = &AssertionResult> {
        self.assertions
            .iter()
            .filter(|a| matches!(a.verdict, Verdict::Refuted { .. }))
    }

    pub fn to_json(&self) -> String {
        // Plain data: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The verdict on one `assert`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    #[serde(with = "span_pair")]
    pub span: Span,
    /// 1-based.
    pub line: u32,
    pub column: u32,
    /// The statement as written (`assert(x > 0, "why")`).
    pub text: String,
    /// The assertion's own message, when it has one.
    pub message: Option<String>,
    pub verdict: Verdict,
    /// Proved only because no path reaches the assertion (a predicate or
    /// `assume` excludes every input): worth a second look.
    pub vacuous: bool,
    /// Solver time spent on this assertion.
    #[serde(with = "millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

/// Proved, refuted with a counterexample, or unknown and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Holds on every path that reaches it.
    Proved,
    /// Fails for the inputs of `counterexample`.
    Refuted {
        counterexample: Counterexample,
    },
    Unknown {
        reason: UnknownReason,
    },
}

/// Inputs for which an assertion fails, and what the probe prints before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    /// The attach point (or points) of the probe that fails.
    pub probe: String,
    /// Values of the inputs that matter, in the order the program reads them.
    pub inputs: Vec<InputAssignment>,
    /// The lines `printf`/`print` print on this path before the assertion.
    pub printed: Vec<String>,
}

/// One input's value in a counterexample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputAssignment {
    /// As the program names it: `args->family`, `pid`, `@start[tid]`,
    /// `$sk->__sk_common.skc_dport`, `str(args->filename)`.
    pub name: String,
    /// Its value (integers as raw bits of `ty`).
    pub value: InputValue,
    /// bpftrace's type (`uint16`, `int64`, `string`).
    pub ty: String,
    /// For people: `10`, `-1`, `443 (0x1bb)`, `"bash"`.
    pub shown: String,
}

/// Why a verdict could not be reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnknownReason {
    /// The solver gave up at the time limit of one query.
    Timeout { limit_ms: u32 },
    /// The verdict depends on something not modelled (named).
    Unsupported { construct: String, line: u32 },
    /// A loop may run more iterations than were explored.
    LoopBound { line: u32, iterations: u32 },
    /// The solver said neither sat nor unsat, or failed.
    Solver { message: String },
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::Timeout { limit_ms } => {
                write!(f, "the solver timed out ({limit_ms} ms per query)")
            }
            UnknownReason::Unsupported { construct, line } => {
                write!(
                    f,
                    "depends on {construct} (line {line}), which is not modelled"
                )
            }
            UnknownReason::LoopBound { line, iterations } => write!(
                f,
                "the loop at line {line} may run more than {iterations} iterations"
            ),
            UnknownReason::Solver { message } => write!(f, "solver: {message}"),
        }
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| format!("{} = {}", i.name, i.shown))
            .collect();
        write!(f, "in {}: {}", self.probe, inputs.join(", "))?;
        if self.printed.is_empty() {
            write!(f, "; prints nothing before the assertion")
        } else {
            let lines: Vec<String> = self
                .printed
                .iter()
                .map(|l| format!("{:?}", l.trim_end_matches('\n')))
                .collect();
            write!(f, "; prints {}", lines.join(", "))
        }
    }
}

impl fmt::Display for AssertionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.line, self.column, self.text)?;
        match &self.verdict {
            Verdict::Proved if self.vacuous => write!(f, "proved (vacuously: no path reaches it)"),
            Verdict::Proved => write!(f, "proved"),
            Verdict::Refuted { counterexample } => write!(f, "refuted {counterexample}"),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}
