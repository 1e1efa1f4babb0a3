//! The encoding test: random programs over integer operators, casts,
//! comparisons, ternaries, `if`/`else` and loops, run on random inputs by the
//! concrete evaluator and by the symbolic executor with the inputs fixed by
//! `assume`s. The two must agree on every variable (`assert($v == value)` is
//! proved) and on every printed line (the counterexample of a final
//! `assert(0)` prints what the concrete run printed). Seeded: a failure
//! prints the program and inputs, and reproduces. `KGENT_DIFF_CASES` (300)
//! and `KGENT_DIFF_FIRST` (0) choose the seeds, `KGENT_DIFF_TRACE=1` prints
//! each case as it runs.

use kgent_frontend::{parse, StaticFacts};
use kgent_verify::{
    eval_probe, verify, EvalOptions, InputValueData, Inputs, RunEnd, VerdictData, VerifyOptions,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Inputs worth trying: zero, small, boundaries, anything.
    fn input(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(4),
            1 => self.below(300),
            2 => *self.pick(&[
                u64::MAX,
                u64::MAX - 1,
                1 << 63,
                (1 << 63) - 1,
                0xffff_ffff,
                0x8000_0000,
                0xffff,
                0x80,
            ]),
            3 => (self.next() as i8) as i64 as u64,
            _ => self.next(),
        }
    }
}

const TYPES: &[&str] = &[
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
];
const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", "<=", ">", ">=", "&&",
    "||",
];

struct Gen {
    rng: Rng,
    vars: Vec<String>,
}

impl Gen {
    fn leaf(&mut self) -> String {
        match self.rng.below(6) {
            0 | 1 => format!("arg{}", self.rng.below(3)),
            2 if !self.vars.is_empty() => self.rng.pick(&self.vars).clone(),
            3 => format!("({})arg{}", self.rng.pick(TYPES), self.rng.below(3)),
            4 => match self.rng.below(4) {
                0 => format!("{}", self.rng.below(10)),
                1 => format!("0x{:x}", self.rng.next() >> self.rng.below(64)),
                2 => format!("-{}", self.rng.below(300)),
                _ => format!("{}", self.rng.below(70)),
            },
            _ => format!("{}", self.rng.below(100)),
        }
    }

    fn expr(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.below(4) == 0 {
            return self.leaf();
        }
        match self.rng.below(10) {
            0..=4 => {
                let op = *self.rng.pick(BINOPS);
                format!("({} {op} {})", self.expr(depth - 1), self.expr(depth - 1))
            }
            5 => format!(
                "{}({})",
                self.rng.pick(&["-", "~", "!"]),
                self.expr(depth - 1)
            ),
            6 => format!("(({})({}))", self.rng.pick(TYPES), self.expr(depth - 1)),
            7 => format!(
                "({} ? {} : {})",
                self.expr(depth - 1),
                self.expr(depth - 1),
                self.expr(depth - 1)
            ),
            8 => format!(
                "bswap(({})({}))",
                self.rng.pick(TYPES),
                self.expr(depth - 1)
            ),
            _ => self.leaf(),
        }
    }

    fn assign(&mut self, indent: &str) -> String {
        let target = self.rng.pick(&self.vars).clone();
        let op = *self.rng.pick(&["=", "=", "+=", "*=", "^=", "<<="]);
        format!("{indent}{target} {op} {};\n", self.expr(2))
    }

    fn program(&mut self) -> String {
        let mut body = String::new();
        let n = 2 + self.rng.below(3);
        for i in 0..n {
            // Each variable's first assignment is at the top: its declared type.
            let e = self.expr(3);
            body.push_str(&format!("    $v{i} = {e};\n"));
            self.vars.push(format!("$v{i}"));
        }
        for _ in 0..1 + self.rng.below(3) {
            match self.rng.below(5) {
                0 | 1 => {
                    let c = self.expr(2);
                    body.push_str(&format!("    if ({c}) {{\n"));
                    body.push_str(&self.assign("        "));
                    if self.rng.below(2) == 0 {
                        body.push_str("    } else {\n");
                        body.push_str(&self.assign("        "));
                    }
                    body.push_str("    }\n");
                }
                2 => {
                    body.push_str(&format!("    unroll({}) {{\n", 1 + self.rng.below(3)));
                    body.push_str(&self.assign("        "));
                    body.push_str("    }\n");
                }
                3 => {
                    // A loop whose count depends on an input, within the bound.
                    body.push_str(&format!(
                        "    $i = 0;\n    while ($i < (arg{} & 3)) {{\n",
                        self.rng.below(3)
                    ));
                    body.push_str(&self.assign("        "));
                    body.push_str("        $i = $i + 1;\n    }\n");
                }
                _ => body.push_str(&self.assign("    ")),
            }
        }
        let all: Vec<&str> = self.vars.iter().map(|v| v.as_str()).collect();
        body.push_str(&format!(
            "    printf(\"{}\\n\", {});\n",
            vec!["%lx"; all.len()].join(" "),
            all.join(", ")
        ));
        let convs = ["%d", "%u", "%x", "%hd", "%hhu", "%ld", "%5d", "%-4u|", "%c"];
        let mut fmt = Vec::new();
        let mut args = Vec::new();
        for v in &all {
            fmt.push(*self.rng.pick(&convs));
            args.push(*v);
        }
        body.push_str(&format!(
            "    printf(\"{}\\n\", {});\n",
            fmt.join(" "),
            args.join(", ")
        ));
        format!("kprobe:f\n{{\n{body}}}\n")
    }
}

fn check_case(seed: u64, version: (u32, u32), facts: &StaticFacts, failures: &mut Vec<String>) {
    let mut g = Gen {
        rng: Rng(seed),
        vars: Vec::new(),
    };
    let program = g.program();
    let inputs: Vec<u64> = (0..3).map(|_| g.rng.input()).collect();
    let parsed = parse(&program);
    assert!(!parsed.has_errors(), "{program}\n{:?}", parsed.diagnostics);
    let mut concrete_inputs = Inputs::new();
    for (i, v) in inputs.iter().enumerate() {
        concrete_inputs.insert(format!("arg{i}"), InputValueData::Int(*v));
    }
    let eval_options = EvalOptions {
        version,
        ..EvalOptions::default()
    };
    let run = eval_probe(
        &program,
        &parsed.program,
        0,
        facts,
        &concrete_inputs,
        &eval_options,
    )
    .unwrap_or_else(|e| panic!("seed {seed}: eval failed: {e}\n{program}"));
    assert_eq!(run.end, RunEnd::Completed, "seed {seed}\n{program}");
    let values: Vec<u64> = run.printed[0]
        .split_whitespace()
        .map(|h| u64::from_str_radix(h, 16).expect("hex"))
        .collect();

    // The same program, inputs fixed, one assertion per variable, then a
    // refutation whose counterexample shows what is printed.
    let assumes: String = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| format!("    assume(arg{i} == 0x{v:x});\n"))
        .collect();
    let asserts: String = g
        .vars
        .iter()
        .zip(&values)
        .map(|(var, v)| format!("    assert({var} == 0x{v:x});\n"))
        .collect();
    let annotated = program
        .replacen("{\n", &format!("{{\n{assumes}"), 1)
        .replacen("\n}\n", &format!("\n{asserts}    assert(0);\n}}\n"), 1);
    let parsed = parse(&annotated);
    assert!(
        !parsed.has_errors(),
        "{annotated}\n{:?}",
        parsed.diagnostics
    );
    if std::env::var_os("KGENT_DIFF_TRACE").is_some() {
        eprintln!("{annotated}");
    }
    let options = VerifyOptions {
        version,
        timeout_ms: 10_000,
        ..VerifyOptions::default()
    };
    let report = verify(&annotated, &parsed.program, facts, &options);
    let (last, vars) = report.assertions.split_last().expect("assertions");
    for a in vars {
        if a.verdict != VerdictData::Proved || a.vacuous {
            failures.push(format!(
                "seed {seed} {version:?}: {a}\ninputs {inputs:x?}\n{annotated}"
            ));
            return;
        }
    }
    match &last.verdict {
        VerdictData::Refuted { counterexample } if counterexample.printed == run.printed => {}
        other => failures.push(format!(
            "seed {seed} {version:?}: concrete run printed {:?}, symbolic: {other:?}\ninputs {inputs:x?}\n{annotated}",
            run.printed
        )),
    }
}

#[test]
fn concrete_and_symbolic_evaluation_agree() {
    let facts = StaticFacts::default();
    let mut failures = Vec::new();
    let cases: u64 = std::env::var("KGENT_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let first: u64 = std::env::var("KGENT_DIFF_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..first + cases {
        if std::env::var_os("KGENT_DIFF_TRACE").is_some() {
            eprintln!("case {seed}");
        }
        for version in [(0, 17), (0, 22)] {
            check_case(seed * 7919 + 1, version, &facts, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases * 2,
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
