//! Property-style tests: `parse_line` and the renderers never panic, on
//! mutated real lines, random bytes and random map dumps. A small xorshift
//! generator keeps them deterministic and dependency-free.

use kgent_output::{
    parse_line, render_map, render_maps, Bucket, MapDump, MapValue, OutputEvent, RenderOptions,
    Scalar, Stats,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Real lines from bpftrace 0.17, the seeds for mutation.
const SEEDS: &[&str] = &[
    r#"{"type": "attached_probes", "data": {"probes": 1}}"#,
    r#"{"type": "printf", "data": "hi 5 \uffffffc3\uffffffbcn\uffffffc3\uffffffaf \"q\" \\ \t tab\n"}"#,
    r#"{"type": "printf", "data": "x\"y|A|\u0001\n"}"#,
    r#"{"type": "time", "data": "00:11:12\n"}"#,
    r#"{"type": "cat", "data": "hello\n"}"#,
    r#"{"type": "join", "data": "/bin/echo,a,b"}"#,
    r#"{"type": "lost_events", "data": {"events": 11631}}"#,
    r#"{"type": "value", "data": [1,"a"]}"#,
    r#"{"type": "map", "data": {"@c": {"a": 1, "b": 2}}}"#,
    r#"{"type": "map", "data": {"@u64": 18446744073709551615}}"#,
    r#"{"type": "map", "data": {"@nt": [1,[2,"x"],"y"]}}"#,
    r#"{"type": "map", "data": {"@u": {"\uffffffc3\uffffffbc<": 1}}}"#,
    r#"{"type": "map", "data": {"@t": 00:10}}"#,
    r#"{"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, {"min": 4, "max": 7, "count": 1}]}}"#,
    r#"{"type": "hist", "data": {"@l": [{"max": 9, "count": 1}, {"min": 10, "max": 19, "count": 0}, {"min": 100, "count": 1}]}}"#,
    r#"{"type": "hist", "data": {"@hk": {"x": [{"min": 2, "max": 3, "count": 1}], "y": []}}}"#,
    r#"{"type": "stats", "data": {"@ks": {"b": {"count": 1, "average": -7, "total": -7}}}}"#,
    r#"{"type": "stats", "data": {"@a": 7}}"#,
    r#"{"type": "helper_error", "helper": "map_update_elem", "retcode": -7, "line": 1, "col": 18}"#,
];

/// Fragments that tend to hit parser edge cases.
const NASTY: &[&str] = &[
    "\\",
    "\"",
    "\\u",
    "\\uffffff",
    "\\uffffffc3",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "-",
    "1e999",
    "340282366920938463463374607431768211456",
    "-9223372036854775809",
    "null",
    "\u{0}",
    "é",
    "\u{ffff}",
    "\n",
    "{\"min\": 1}",
    "[{\"count\": 1}]",
    "\"@\"",
    "\"type\"",
    "\"data\"",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => bytes[at] = rng.next() as u8,
            2 => {
                let frag = rng.pick(NASTY).as_bytes();
                bytes.splice(at..at, frag.iter().copied());
            }
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {
                // Swap in a chunk of another seed.
                let other = rng.pick(SEEDS).as_bytes();
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                bytes.splice(at..at, other[from..to].iter().copied());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_text(rng: &mut Rng) -> String {
    (0..rng.below(80))
        .map(|_| match rng.below(4) {
            0 => *rng.pick(NASTY),
            _ => *rng.pick(&["a", " ", "@", "0", "9", "x", "\t", "<", "|", "*", "ü"]),
        })
        .collect()
}

/// Parses and, for maps, renders: nothing may panic.
fn exercise(line: &str, opts: &RenderOptions) -> usize {
    match parse_line(line) {
        Ok(events) => {
            for ev in &events {
                if let OutputEvent::Map(m) = ev {
                    let b = render_map(m, opts);
                    assert!(!b.plain.is_empty());
                }
            }
            events.len()
        }
        Err(e) => {
            assert_eq!(e.line(), line);
            0
        }
    }
}

#[test]
fn parse_line_never_panics_on_mutated_lines() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = RenderOptions::default();
    let mut parsed = 0;
    for i in 0..20_000 {
        let line = if i % 10 == 0 {
            random_text(&mut rng)
        } else {
            let seed = *rng.pick(SEEDS);
            mutate(&mut rng, seed)
        };
        parsed += exercise(&line, &opts);
    }
    // The mutations are mild enough that many lines still parse.
    assert!(parsed > 1_000, "only {parsed} events");
}

#[test]
fn every_seed_parses_except_the_known_bad_one() {
    for seed in SEEDS {
        let ok = parse_line(seed).is_ok();
        assert_eq!(ok, !seed.contains("00:10"), "{seed}");
    }
}

fn random_key(rng: &mut Rng) -> String {
    let mut k = random_text(rng);
    if rng.below(4) == 0 {
        k = format!("\n    {k}+1\n    other+2\n");
    }
    k
}

fn random_int(rng: &mut Rng) -> i128 {
    match rng.below(6) {
        0 => i128::MAX,
        1 => i128::MIN,
        2 => -(rng.below(1000) as i128),
        3 => u64::MAX.into(),
        _ => rng.below(1 << 20) as i128,
    }
}

fn random_bucket(rng: &mut Rng) -> Bucket {
    let bound = |rng: &mut Rng| match rng.below(3) {
        0 => None,
        1 => Some(1i128 << rng.below(127)),
        _ => Some(random_int(rng)),
    };
    Bucket {
        min: bound(rng),
        max: bound(rng),
        count: match rng.below(3) {
            0 => 0,
            1 => u64::MAX,
            _ => rng.next() % 1000,
        },
    }
}

fn random_stats(rng: &mut Rng) -> Stats {
    Stats {
        count: rng.next(),
        average: random_int(rng),
        total: random_int(rng),
    }
}

fn random_scalar(rng: &mut Rng) -> Scalar {
    match rng.below(3) {
        0 => Scalar::Int(random_int(rng)),
        1 => Scalar::Str(random_text(rng)),
        _ => Scalar::Other(serde_json::json!([random_text(rng), {"k": [1, null, true, 1.5]}])),
    }
}

fn random_dump(rng: &mut Rng) -> MapDump {
    let n = rng.below(70);
    let value = match rng.below(6) {
        0 => MapValue::Scalar(random_scalar(rng)),
        1 => MapValue::Keyed(
            (0..n)
                .map(|_| (random_key(rng), random_scalar(rng)))
                .collect(),
        ),
        2 => MapValue::Hist((0..n).map(|_| random_bucket(rng)).collect()),
        3 => MapValue::KeyedHist(
            (0..n % 8)
                .map(|_| {
                    (
                        random_key(rng),
                        (0..rng.below(10)).map(|_| random_bucket(rng)).collect(),
                    )
                })
                .collect(),
        ),
        4 => MapValue::Stats(random_stats(rng)),
        _ => MapValue::KeyedStats(
            (0..n)
                .map(|_| (random_key(rng), random_stats(rng)))
                .collect(),
        ),
    };
    MapDump {
        name: format!("@{}", random_text(rng)),
        value,
    }
}

#[test]
fn renderers_never_panic_and_svg_is_well_formed() {
    let mut rng = Rng(42);
    for _ in 0..1_500 {
        let dumps: Vec<MapDump> = (0..1 + rng.below(3))
            .map(|_| random_dump(&mut rng))
            .collect();
        let opts = RenderOptions {
            max_rows: rng.below(50),
            chart_width: rng.below(1200) as u32,
        };
        let b = render_maps(&dumps, &opts);
        assert!(!b.html.contains("<script"));
        if let Some(svg) = &b.svg {
            if let Err(e) = roxmltree::Document::parse(svg) {
                panic!("{e}\n{svg}");
            }
        }
        let wrapped = format!("<div>{}</div>", b.html);
        if let Err(e) = roxmltree::Document::parse(&wrapped) {
            panic!("{e}\n{wrapped}");
        }
    }
}
