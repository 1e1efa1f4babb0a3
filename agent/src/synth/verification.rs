//! Verifying a candidate that passed the checks: annotate it (the model's
//! comprehension when online, the contracts and rules always), then let
//! `kgent-verifier` prove or refute every `assert`.
//!
//! A refuted assertion sends the candidate back to the model with the
//! counterexample; an unknown one is reported and never counted as proved; a
//! verifier that cannot be used (missing, crashed, too slow) leaves the
//! candidate checked but unverified, and says so.

use serde::{Deserialize, Serialize};

use kgent_llm::Usage;

use crate::verifier::{
    AnnotationData, AnnotationKindData, AssertionData, CounterexampleData, Report, VerdictData,
    VerifierResponse,
};

/// What verification found for one candidate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The program that was verified: the candidate with its annotations.
    pub annotated_source: String,
    /// Every annotation of `annotated_source`, with its origin.
    pub annotations: Vec<AnnotationData>,
    /// The verdicts; `None` when `error` says why there are none.
    pub report: Option<Report>,
    /// About the verification as a whole (no kernel facts, model annotations
    /// not used...).
    pub notes: Vec<String>,
    /// Why there are no verdicts (verifier missing, crashed, too slow).
    pub error: Option<String>,
    pub comprehension: Comprehension,
    /// Wall time: comprehension and verification.
    pub elapsed_ms: u64,
}

/// Who wrote the request's annotations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Comprehension {
    /// Nobody: contracts and rules only (offline, or the model not asked).
    #[default]
    RulesOnly,
    /// The model annotated the program and its annotations were used.
    Model {
        model: String,
        usage: Usage,
        elapsed_ms: u64,
    },
    /// The model's reply was not used (it changed the code, did not parse...).
    Rejected { reason: String },
    /// The model could not be asked (error, timeout).
    Failed { error: String },
}

/// The verdict on a candidate as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every assertion proved (at least one).
    Proved,
    /// At least one assertion refuted.
    Refuted,
    /// None refuted, at least one without a verdict.
    Unknown,
    /// Verified, but nothing was asserted.
    NoAssertions,
    /// The verifier gave no report.
    NotVerified,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proved => "proved",
            Status::Refuted => "refuted",
            Status::Unknown => "unknown",
            Status::NoAssertions => "no assertions",
            Status::NotVerified => "not verified",
        }
    }
}

/// How many assertions ended which way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub proved: usize,
    pub refuted: usize,
    pub unknown: usize,
    /// Proved only because no path reaches them (part of `proved`).
    pub vacuous: usize,
}

impl Verification {
    /// What the verifier answered (`error` set when it could not verify).
    pub fn from_response(r: VerifierResponse, comprehension: Comprehension) -> Verification {
        Verification {
            annotated_source: r.annotated_source,
            annotations: r.annotations,
            report: r.report,
            notes: r.notes,
            error: r.error,
            comprehension,
            elapsed_ms: 0,
        }
    }

    /// A verification that could not run.
    pub fn failed(source: &str, error: String, comprehension: Comprehension) -> Verification {
        Verification {
            annotated_source: source.to_string(),
            error: Some(error),
            comprehension,
            ..Verification::default()
        }
    }

    pub fn status(&self) -> Status {
        let Some(report) = &self.report else {
            return Status::NotVerified;
        };
        if report.assertions.is_empty() {
            Status::NoAssertions
        } else if report.any_refuted() {
            Status::Refuted
        } else if report.any_unknown() {
            Status::Unknown
        } else {
            Status::Proved
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for a in self.assertions() {
            match a.verdict {
                VerdictData::Proved => {
                    c.proved += 1;
                    c.vacuous += usize::from(a.vacuous);
                }
                VerdictData::Refuted { .. } => c.refuted += 1,
                VerdictData::Unknown { .. } => c.unknown += 1,
            }
        }
        c
    }

    pub fn assertions(&self) -> &[AssertionData] {
        self.report
            .as_ref()
            .map_or(&[][..], |r| r.assertions.as_slice())
    }

    /// The refuted assertions with their counterexamples.
    pub fn refuted(&self) -> Vec<(&AssertionData, &CounterexampleData)> {
        self.assertions()
            .iter()
            .filter_map(|a| match &a.verdict {
                VerdictData::Refuted { counterexample } => Some((a, counterexample)),
                _ => None,
            })
            .collect()
    }

    /// The annotation behind the assertion at `line` of the annotated source.
    pub fn annotation_at(&self, line: u32) -> Option<&AnnotationData> {
        self.annotations
            .iter()
            .find(|a| a.kind == AnnotationKindData::Assert && a.line == line)
    }

    /// When an assertion is refuted, what went wrong in one line: the first
    /// refuted assertion, where it came from and its counterexample.
    pub fn refutation(&self) -> Option<String> {
        let refuted = self.refuted();
        let (assertion, cex) = refuted.first()?;
        let mut out = format!("the verifier refuted `{}`", assertion.text.trim());
        if let Some(a) = self.annotation_at(assertion.line) {
            out.push_str(&format!(" ({})", a.origin));
        }
        out.push_str(&format!(": {}", self.counterexample_text(assertion, cex)));
        if refuted.len() > 1 {
            out.push_str(&format!(" (and {} more)", refuted.len() - 1));
        }
        Some(out)
    }

    /// The counterexample in words: its inputs, or, for an assertion that
    /// reads nothing (a rule's substituted filter, `10 == 2`), that every
    /// event reaching it breaks it: there the inputs are arbitrary.
    pub fn counterexample_text(
        &self,
        assertion: &AssertionData,
        cex: &CounterexampleData,
    ) -> String {
        let constant = self
            .annotation_at(assertion.line)
            .is_some_and(|a| crate::contracts::is_constant_condition(&a.expr));
        if constant {
            format!("it fails for every event that reaches it in {}", cex.probe)
        } else {
            cex.to_string()
        }
    }

    /// One line for people: `2 proved, 1 refuted in 4 ms`.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("not verified: {e}");
        }
        let c = self.counts();
        let assumes = self
            .annotations
            .iter()
            .filter(|a| a.kind == AnnotationKindData::Assume)
            .count();
        let mut parts = Vec::new();
        if c.proved + c.refuted + c.unknown == 0 {
            parts.push("no assertions".to_string());
        }
        for (n, word) in [
            (c.proved, "proved"),
            (c.refuted, "refuted"),
            (c.unknown, "unknown"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        if c.vacuous > 0 {
            parts.push(format!("{} of them vacuously", c.vacuous));
        }
        format!(
            "{} ({assumes} assumption(s)) in {} ms",
            parts.join(", "),
            self.elapsed_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::{InputData, InputValueData, OriginData, UnknownReasonData};

    fn assertion(line: u32, verdict: VerdictData) -> AssertionData {
        AssertionData {
            span: [0, 1],
            line,
            column: 5,
            text: "assert(x)".into(),
            message: None,
            verdict,
            vacuous: false,
            elapsed_ms: 0.5,
        }
    }

    fn refutation() -> VerdictData {
        VerdictData::Refuted {
            counterexample: CounterexampleData {
                probe: "tracepoint:sock:inet_sock_set_state".into(),
                inputs: vec![InputData {
                    name: "args.family".into(),
                    value: InputValueData::Int(10),
                    ty: "uint16".into(),
                    shown: "10".into(),
                }],
                printed: vec![],
            },
        }
    }

    fn with(assertions: Vec<AssertionData>) -> Verification {
        Verification {
            report: Some(Report {
                assertions,
                ..Report::default()
            }),
            annotations: vec![AnnotationData {
                kind: AnnotationKindData::Assert,
                expr: "x".into(),
                origin: OriginData::Rule {
                    name: "address-family".into(),
                },
                line: 3,
                why: "both families".into(),
            }],
            ..Verification::default()
        }
    }

    #[test]
    fn status_follows_the_worst_verdict() {
        let unknown = VerdictData::Unknown {
            reason: UnknownReasonData::Timeout { limit_ms: 200 },
        };
        assert_eq!(Verification::default().status(), Status::NotVerified);
        assert_eq!(with(vec![]).status(), Status::NoAssertions);
        assert_eq!(
            with(vec![assertion(3, VerdictData::Proved)]).status(),
            Status::Proved
        );
        let v = with(vec![
            assertion(3, VerdictData::Proved),
            assertion(4, unknown.clone()),
        ]);
        assert_eq!(v.status(), Status::Unknown);
        assert_eq!(v.counts().unknown, 1);
        let v = with(vec![assertion(3, refutation()), assertion(4, unknown)]);
        assert_eq!(v.status(), Status::Refuted);
        assert_eq!(v.refuted().len(), 1);
        assert_eq!(v.annotation_at(3).unwrap().why, "both families");
        assert!(
            v.summary().starts_with("1 refuted, 1 unknown"),
            "{}",
            v.summary()
        );
    }

    #[test]
    fn a_failed_verification_says_why() {
        let v = Verification::failed("p", "not found".into(), Comprehension::RulesOnly);
        assert_eq!(v.status(), Status::NotVerified);
        assert_eq!(v.summary(), "not verified: not found");
    }
}
