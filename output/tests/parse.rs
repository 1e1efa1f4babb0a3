//! Parsing tests on lines captured from real `bpftrace -f json` (v0.17.0,
//! Debian) runs; each test names the program that printed its lines.

use kgent_output::{parse_line, Bucket, MapDump, MapValue, OutputEvent, ParseError, Scalar, Stats};
use serde_json::json;

/// Parses a line that must yield exactly one event.
fn one(line: &str) -> OutputEvent {
    let mut events = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(events.len(), 1, "{line}");
    events.remove(0)
}

/// Parses a line that must yield exactly one map.
fn map(line: &str) -> MapDump {
    match one(line) {
        OutputEvent::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

fn b(min: Option<i128>, max: Option<i128>, count: u64) -> Bucket {
    Bucket { min, max, count }
}

#[test]
fn attached_probes_and_lost_events() {
    assert_eq!(
        one(r#"{"type": "attached_probes", "data": {"probes": 1}}"#),
        OutputEvent::AttachedProbes(1)
    );
    // BPFTRACE_PERF_RB_PAGES=1, a syscall printf storm and a stalled reader.
    assert_eq!(
        one(r#"{"type": "lost_events", "data": {"events": 11631}}"#),
        OutputEvent::LostEvents(11631)
    );
}

#[test]
fn text_events() {
    // printf("%s|%c|\x01\n", "x\"y", 65); printf("no newline"); printf("\n")
    assert_eq!(
        one(r#"{"type": "printf", "data": "x\"y|A|\u0001\n"}"#),
        OutputEvent::Printf("x\"y|A|\u{1}\n".into())
    );
    assert_eq!(
        one(r#"{"type": "printf", "data": "no newline"}"#),
        OutputEvent::Printf("no newline".into())
    );
    assert_eq!(
        one(r#"{"type": "printf", "data": "\n"}"#),
        OutputEvent::Printf("\n".into())
    );
    // time("%S\n"); time()
    assert_eq!(
        one(r#"{"type": "time", "data": "25\n"}"#),
        OutputEvent::Time("25\n".into())
    );
    assert_eq!(
        one(r#"{"type": "time", "data": "00:11:12\n"}"#),
        OutputEvent::Time("00:11:12\n".into())
    );
    // cat("/tmp/bt/f.txt") of "hello\n", and of an empty file.
    assert_eq!(
        one(r#"{"type": "cat", "data": "hello\n"}"#),
        OutputEvent::Cat("hello\n".into())
    );
    assert_eq!(
        one(r#"{"type": "cat", "data": ""}"#),
        OutputEvent::Cat(String::new())
    );
    // join(args->argv); join(args->argv, ",") on `/bin/echo a b`.
    assert_eq!(
        one(r#"{"type": "join", "data": "/bin/echo a b"}"#),
        OutputEvent::Join("/bin/echo a b".into())
    );
    assert_eq!(
        one(r#"{"type": "join", "data": "/bin/echo,a,b"}"#),
        OutputEvent::Join("/bin/echo,a,b".into())
    );
}

#[test]
fn printf_unicode_is_repaired() {
    // printf("hi %d ünï \"q\" \\ \t tab\n", 5): bpftrace 0.17 escapes each
    // UTF-8 byte as a sign-extended \uffffffXX.
    assert_eq!(
        one(
            r#"{"type": "printf", "data": "hi 5 \uffffffc3\uffffffbcn\uffffffc3\uffffffaf \"q\" \\ \t tab\n"}"#
        ),
        OutputEvent::Printf("hi 5 ünï \"q\" \\ \t tab\n".into())
    );
    assert_eq!(
        one(r#"{"type": "printf", "data": "\uffffffc3\uffffffa9\n"}"#),
        OutputEvent::Printf("é\n".into())
    );
    // Map keys get the same treatment: @u["ü<"] = 1.
    assert_eq!(
        map(r#"{"type": "map", "data": {"@u": {"\uffffffc3\uffffffbc<": 1}}}"#).value,
        MapValue::Keyed(vec![("ü<".into(), Scalar::Int(1))])
    );
}

#[test]
fn keyed_and_scalar_maps() {
    // @c["a"] = count(); @c["b"] = count() twice.
    assert_eq!(
        map(r#"{"type": "map", "data": {"@c": {"a": 1, "b": 2}}}"#),
        MapDump {
            name: "@c".into(),
            value: MapValue::Keyed(vec![
                ("a".into(), Scalar::Int(1)),
                ("b".into(), Scalar::Int(2))
            ]),
        }
    );
    // bpftrace's order is kept, not sorted.
    assert_eq!(
        map(r#"{"type": "stats", "data": {"@ka": {"y": -9, "x": 3}}}"#).value,
        MapValue::Keyed(vec![
            ("y".into(), Scalar::Int(-9)),
            ("x".into(), Scalar::Int(3))
        ])
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@v": 7}}"#).value,
        MapValue::Scalar(Scalar::Int(7))
    );
    // @neg = -5; @su = sum(-4); @mi = min(3); @ma = max(9)
    assert_eq!(
        map(r#"{"type": "map", "data": {"@neg": -5}}"#).value,
        MapValue::Scalar(Scalar::Int(-5))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@su": -4}}"#).value,
        MapValue::Scalar(Scalar::Int(-4))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@kmin": {"m": 2}}}"#).value,
        MapValue::Keyed(vec![("m".into(), Scalar::Int(2))])
    );
    // @u64 = (uint64)18446744073709551615; @big = 18446744073709551615 (int64)
    assert_eq!(
        map(r#"{"type": "map", "data": {"@u64": 18446744073709551615}}"#).value,
        MapValue::Scalar(Scalar::Int(u64::MAX.into()))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@big": -1}}"#).value,
        MapValue::Scalar(Scalar::Int(-1))
    );
    // An unkeyed count() that never fired still prints 0.
    assert_eq!(
        map(r#"{"type": "map", "data": {"@ec": 0}}"#).value,
        MapValue::Scalar(Scalar::Int(0))
    );
}

#[test]
fn string_and_tuple_values() {
    // @x[pid] = comm; @str2 = "scal"; @sv = "q\"\\<"
    assert_eq!(
        map(r#"{"type": "map", "data": {"@x": {"6329": "bpftrace"}}}"#).value,
        MapValue::Keyed(vec![("6329".into(), Scalar::Str("bpftrace".into()))])
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@str2": "scal"}}"#).value,
        MapValue::Scalar(Scalar::Str("scal".into()))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@sv": "q\"\\<"}}"#).value,
        MapValue::Scalar(Scalar::Str("q\"\\<".into()))
    );
    // @ks = ksym(0xffffffff81000000)
    assert_eq!(
        map(r#"{"type": "map", "data": {"@ks": "_text"}}"#).value,
        MapValue::Scalar(Scalar::Str("_text".into()))
    );
    // @t = (1, "two"); @nt = (1, (2, "x"), "y"); @kt[1] = (3, "x")
    assert_eq!(
        map(r#"{"type": "map", "data": {"@t": [1,"two"]}}"#).value,
        MapValue::Scalar(Scalar::Other(json!([1, "two"])))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@nt": [1,[2,"x"],"y"]}}"#).value,
        MapValue::Scalar(Scalar::Other(json!([1, [2, "x"], "y"])))
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@kt": {"1": [3,"x"]}}}"#).value,
        MapValue::Keyed(vec![("1".into(), Scalar::Other(json!([3, "x"])))])
    );
}

#[test]
fn odd_keys() {
    // @k[1, "a"] = 1: multi-keys joined with ",".
    assert_eq!(
        map(r#"{"type": "map", "data": {"@k": {"1,a": 1}}}"#).value,
        MapValue::Keyed(vec![("1,a".into(), Scalar::Int(1))])
    );
    // @kk[comm, pid] = count()
    assert_eq!(
        map(r#"{"type": "map", "data": {"@kk": {"bpftrace,3656": 1}}}"#).value,
        MapValue::Keyed(vec![("bpftrace,3656".into(), Scalar::Int(1))])
    );
    // @q["a\"b\\c\nd"] = 1; @strk["a<b|c*_`"] = 1
    assert_eq!(
        map(r#"{"type": "map", "data": {"@q": {"a\"b\\c\nd": 1}}}"#).value,
        MapValue::Keyed(vec![("a\"b\\c\nd".into(), Scalar::Int(1))])
    );
    assert_eq!(
        map(r#"{"type": "map", "data": {"@strk": {"a<b|c*_`": 1}}}"#).value,
        MapValue::Keyed(vec![("a<b|c*_`".into(), Scalar::Int(1))])
    );
    // @ks[kstack] = count() in BEGIN.
    let stack = map(
        r#"{"type": "map", "data": {"@ks": {"\n    _einittext+1015207198\n    __bpf_prog_test_run_raw_tp+106\n    bpf_prog_test_run_raw_tp+279\n    __sys_bpf+2593\n    __x64_sys_bpf+29\n    do_syscall_64+113\n    entry_SYSCALL_64_after_hwframe+118\n": 1}}}"#,
    );
    let MapValue::Keyed(rows) = stack.value else {
        panic!("keyed")
    };
    assert!(rows[0].0.starts_with("\n    _einittext+1015207198\n"));
    assert_eq!(rows[0].1, Scalar::Int(1));
}

#[test]
fn hist_with_negative_and_zero_buckets() {
    // @h = hist(5); hist(0); hist(-3); hist(100); hist(2000000)
    let line = r#"{"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 0}, {"min": 2, "max": 3, "count": 0}, {"min": 4, "max": 7, "count": 1}, {"min": 8, "max": 15, "count": 0}, {"min": 16, "max": 31, "count": 0}, {"min": 32, "max": 63, "count": 0}, {"min": 64, "max": 127, "count": 1}, {"min": 128, "max": 255, "count": 0}, {"min": 256, "max": 511, "count": 0}, {"min": 512, "max": 1023, "count": 0}, {"min": 1024, "max": 2047, "count": 0}, {"min": 2048, "max": 4095, "count": 0}, {"min": 4096, "max": 8191, "count": 0}, {"min": 8192, "max": 16383, "count": 0}, {"min": 16384, "max": 32767, "count": 0}, {"min": 32768, "max": 65535, "count": 0}, {"min": 65536, "max": 131071, "count": 0}, {"min": 131072, "max": 262143, "count": 0}, {"min": 262144, "max": 524287, "count": 0}, {"min": 524288, "max": 1048575, "count": 0}, {"min": 1048576, "max": 2097151, "count": 1}]}}"#;
    let MapValue::Hist(buckets) = map(line).value else {
        panic!("hist")
    };
    assert_eq!(buckets.len(), 23);
    assert_eq!(buckets[0], b(None, Some(-1), 1));
    assert_eq!(buckets[1], b(Some(0), Some(0), 1));
    assert_eq!(buckets[4], b(Some(4), Some(7), 1));
    assert_eq!(buckets[22], b(Some(1048576), Some(2097151), 1));
    // @z = hist(0)
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@z": [{"min": 0, "max": 0, "count": 1}]}}"#).value,
        MapValue::Hist(vec![b(Some(0), Some(0), 1)])
    );
    // zero(@h); print(@h)
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@h": []}}"#).value,
        MapValue::Hist(vec![])
    );
}

#[test]
fn lhist_outlier_buckets() {
    // @l = lhist(5|-5|500|100|99, 0, 100, 10): below-min has only "max"
    // (= min - 1), above-max only "min" (= max).
    let line = r#"{"type": "hist", "data": {"@l": [{"max": -1, "count": 1}, {"min": 0, "max": 9, "count": 1}, {"min": 10, "max": 19, "count": 0}, {"min": 20, "max": 29, "count": 0}, {"min": 30, "max": 39, "count": 0}, {"min": 40, "max": 49, "count": 0}, {"min": 50, "max": 59, "count": 0}, {"min": 60, "max": 69, "count": 0}, {"min": 70, "max": 79, "count": 0}, {"min": 80, "max": 89, "count": 0}, {"min": 90, "max": 99, "count": 1}, {"min": 100, "count": 2}]}}"#;
    let MapValue::Hist(buckets) = map(line).value else {
        panic!("hist")
    };
    assert_eq!(buckets.first(), Some(&b(None, Some(-1), 1)));
    assert_eq!(buckets.last(), Some(&b(Some(100), None, 2)));
    // lhist(5|100, 10, 100, 10): below-min bucket is {"max": 9}.
    let line = r#"{"type": "hist", "data": {"@l": [{"max": 9, "count": 1}, {"min": 10, "max": 19, "count": 0}, {"min": 20, "max": 29, "count": 0}, {"min": 30, "max": 39, "count": 0}, {"min": 40, "max": 49, "count": 0}, {"min": 50, "max": 59, "count": 0}, {"min": 60, "max": 69, "count": 0}, {"min": 70, "max": 79, "count": 0}, {"min": 80, "max": 89, "count": 0}, {"min": 90, "max": 99, "count": 0}, {"min": 100, "count": 1}]}}"#;
    let MapValue::Hist(buckets) = map(line).value else {
        panic!("hist")
    };
    assert_eq!(buckets[0], b(None, Some(9), 1));
    assert_eq!(buckets[10], b(Some(100), None, 1));
}

#[test]
fn keyed_hists() {
    // @hk["x"] = hist(3); @hk["y"] = hist(1024)
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@hk": {"x": [{"min": 2, "max": 3, "count": 1}], "y": [{"min": 1024, "max": 2047, "count": 1}]}}}"#).value,
        MapValue::KeyedHist(vec![
            ("x".into(), vec![b(Some(2), Some(3), 1)]),
            ("y".into(), vec![b(Some(1024), Some(2047), 1)]),
        ])
    );
    // @kl["a"] = lhist(-5, 0, 10, 5); @kl["b"] = lhist(50, 0, 10, 5)
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@kl": {"a": [{"max": -1, "count": 1}], "b": [{"min": 10, "count": 1}]}}}"#).value,
        MapValue::KeyedHist(vec![
            ("a".into(), vec![b(None, Some(-1), 1)]),
            ("b".into(), vec![b(Some(10), None, 1)]),
        ])
    );
    // zero(@hk); print(@hk)
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@hk": {"k": []}}}"#).value,
        MapValue::KeyedHist(vec![("k".into(), vec![])])
    );
}

#[test]
fn stats_and_avg() {
    let s = |count, average, total| Stats {
        count,
        average,
        total,
    };
    // @s = stats(10)
    assert_eq!(
        map(r#"{"type": "stats", "data": {"@s": {"count": 1, "average": 10, "total": 10}}}"#).value,
        MapValue::Stats(s(1, 10, 10))
    );
    // @ks["a"] = stats(5); @ks["b"] = stats(-7)
    assert_eq!(
        map(r#"{"type": "stats", "data": {"@ks": {"b": {"count": 1, "average": -7, "total": -7}, "a": {"count": 1, "average": 5, "total": 5}}}}"#).value,
        MapValue::KeyedStats(vec![("b".into(), s(1, -7, -7)), ("a".into(), s(1, 5, 5))])
    );
    // @a = avg(7): type "stats" but a plain int.
    assert_eq!(
        map(r#"{"type": "stats", "data": {"@a": 7}}"#).value,
        MapValue::Scalar(Scalar::Int(7))
    );
    // zero(@s)
    assert_eq!(
        map(r#"{"type": "stats", "data": {"@s": {"count": 0, "average": 0, "total": 0}}}"#).value,
        MapValue::Stats(s(0, 0, 0))
    );
}

#[test]
fn value_events() {
    // print((1, "a")); print(5); print("strv")
    assert_eq!(
        one(r#"{"type": "value", "data": [1,"a"]}"#),
        OutputEvent::Value(json!([1, "a"]))
    );
    assert_eq!(
        one(r#"{"type": "value", "data": 5}"#),
        OutputEvent::Value(json!(5))
    );
    assert_eq!(
        one(r#"{"type": "value", "data": "strv"}"#),
        OutputEvent::Value(json!("strv"))
    );
}

#[test]
fn helper_error_and_unknown_types() {
    // BPFTRACE_MAP_KEYS_MAX=1 bpftrace -k: payload at the top level.
    assert_eq!(
        one(
            r#"{"type": "helper_error", "helper": "map_update_elem", "retcode": -7, "line": 1, "col": 18}"#
        ),
        OutputEvent::Unknown {
            kind: "helper_error".into(),
            data: json!({"helper": "map_update_elem", "retcode": -7, "line": 1, "col": 18}),
        }
    );
    // `system()` output (--unsafe) is printed text.
    assert_eq!(
        one(r#"{"type": "syscall", "data": "output of system()\n"}"#),
        OutputEvent::Printf("output of system()\n".into())
    );
    assert_eq!(
        one(r#"{"type": "brand_new", "data": {"x": [1, 2]}}"#),
        OutputEvent::Unknown {
            kind: "brand_new".into(),
            data: json!({"x": [1, 2]}),
        }
    );
    assert_eq!(
        one(r#"{"type": "future"}"#),
        OutputEvent::Unknown {
            kind: "future".into(),
            data: serde_json::Value::Null,
        }
    );
}

#[test]
fn known_types_with_unexpected_shapes_are_unknown() {
    for (line, kind) in [
        (r#"{"type": "printf", "data": 5}"#, "printf"),
        (
            r#"{"type": "attached_probes", "data": {"probes": -1}}"#,
            "attached_probes",
        ),
        (r#"{"type": "lost_events", "data": 3}"#, "lost_events"),
        (r#"{"type": "hist", "data": {"@h": [{"min": 1}]}}"#, "hist"),
        (r#"{"type": "hist", "data": {"@h": 3}}"#, "hist"),
        (
            r#"{"type": "hist", "data": {"@h": [{"count": -1}]}}"#,
            "hist",
        ),
        (r#"{"type": "stats", "data": {"@s": {"k": "v"}}}"#, "stats"),
        (r#"{"type": "map", "data": [1]}"#, "map"),
    ] {
        match one(line) {
            OutputEvent::Unknown { kind: k, .. } => assert_eq!(k, kind, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    // One good and one bad map: nothing is lost, the event is Unknown.
    let ev = one(r#"{"type": "hist", "data": {"@a": [], "@b": 1}}"#);
    assert_eq!(
        ev,
        OutputEvent::Unknown {
            kind: "hist".into(),
            data: json!({"@a": [], "@b": 1}),
        }
    );
}

#[test]
fn several_maps_in_one_object() {
    let events =
        parse_line(r#"{"type": "map", "data": {"@b": 1, "@a": {"k": 2}}}"#).expect("parses");
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Map(m) => Some(m.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["@b", "@a"]);
}

#[test]
fn unknown_bucket_fields_are_ignored() {
    assert_eq!(
        map(r#"{"type": "hist", "data": {"@h": [{"min": 4, "max": 7, "count": 3, "pct": 0.5}]}}"#)
            .value,
        MapValue::Hist(vec![b(Some(4), Some(7), 3)])
    );
}

#[test]
fn blank_lines_give_no_events() {
    // Two empty lines precede the exit-time dump.
    for line in ["", "\n", "  \t ", "\r\n"] {
        assert_eq!(parse_line(line), Ok(vec![]));
    }
    // Line endings are tolerated.
    assert_eq!(
        parse_line("{\"type\": \"cat\", \"data\": \"x\"}\r\n"),
        Ok(vec![OutputEvent::Cat("x".into())])
    );
}

#[test]
fn non_events_are_errors_with_the_line() {
    for line in [
        "No probes to attach",
        "a b",
        // strftime() stored in a map is printed unquoted.
        r#"{"type": "map", "data": {"@t": 00:10}}"#,
        r#"{"type": "printf", "data": "cut"#,
        "42",
        r#""just a string""#,
        "[1, 2]",
        r#"{"data": "no type"}"#,
        r#"{"type": 5, "data": "x"}"#,
        r#"{"type": "cat", "data": "x"} trailing"#,
    ] {
        let err = parse_line(line).expect_err(line);
        let ParseError::NotJson { line: l, reason } = &err;
        assert_eq!(l, line);
        assert!(!reason.is_empty());
        assert_eq!(err.line(), line);
        assert!(err.to_string().contains(line));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        r#"{{"type": "value", "data": {}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_line(&deep).is_err());
}

#[test]
fn events_serialize() {
    let ev = one(r#"{"type": "hist", "data": {"@l": [{"min": 100, "count": 2}]}}"#);
    let v = serde_json::to_value(&ev).expect("serializes");
    assert_eq!(
        v,
        json!({"Map": {"name": "@l", "value": {"Hist": [{"min": 100, "max": null, "count": 2}]}}})
    );
}

#[test]
fn a_whole_run_parses() {
    // The full stdout of:
    // bpftrace -f json -e 'BEGIN { @c["a"] = count(); @h = hist(5); @s = stats(10);
    //   @k[1,"a"] = 1; @hk["x"] = hist(3); printf("hi %d\n", 5); time("%S\n"); exit(); }'
    let out = r#"{"type": "attached_probes", "data": {"probes": 1}}
{"type": "printf", "data": "hi 5\n"}
{"type": "time", "data": "25\n"}


{"type": "map", "data": {"@c": {"a": 1}}}
{"type": "hist", "data": {"@h": [{"min": 4, "max": 7, "count": 1}]}}
{"type": "hist", "data": {"@hk": {"x": [{"min": 2, "max": 3, "count": 1}]}}}
{"type": "map", "data": {"@k": {"1,a": 1}}}
{"type": "stats", "data": {"@s": {"count": 1, "average": 10, "total": 10}}}
"#;
    let events: Vec<OutputEvent> = out
        .lines()
        .flat_map(|l| parse_line(l).expect("every line parses"))
        .collect();
    assert_eq!(events.len(), 8);
    let maps = events
        .iter()
        .filter(|e| matches!(e, OutputEvent::Map(_)))
        .count();
    assert_eq!(maps, 5);
}

#[test]
fn bench_shaped_lines_parse_correctly() {
    // The shapes examples/json_parse_bench.rs times; checked here, not timed.
    for i in 0..10_000u32 {
        let line = format!(r#"{{"type": "printf", "data": "openat pid={i} comm=bash ret=0\n"}}"#);
        assert_eq!(
            parse_line(&line),
            Ok(vec![OutputEvent::Printf(format!(
                "openat pid={i} comm=bash ret=0\n"
            ))])
        );
    }
    let members: Vec<String> = (0..20).map(|k| format!(r#""comm{k}": {k}"#)).collect();
    let line = format!(
        r#"{{"type": "map", "data": {{"@c": {{{}}}}}}}"#,
        members.join(", ")
    );
    let MapValue::Keyed(rows) = map(&line).value else {
        panic!("keyed")
    };
    assert_eq!(rows.len(), 20);
    assert_eq!(rows[19], ("comm19".to_string(), Scalar::Int(19)));
}
