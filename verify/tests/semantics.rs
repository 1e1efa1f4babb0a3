//! Verdicts on small programs, one behaviour each: the integer rules, maps,
//! strings, control flow, loops, unknown verdicts and their reasons, notes,
//! JSON output.

use kgent_frontend::{parse, StaticFacts};
use kgent_verify::{
    verify, AssertionData, CounterexampleData, Report, UnknownReasonData, VerdictData,
    VerifyOptions,
};

fn facts() -> StaticFacts {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/kernel.json");
    StaticFacts::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run_with(source: &str, options: &VerifyOptions) -> Report {
    let parsed = parse(source);
    assert!(!parsed.has_errors(), "{source}: {:?}", parsed.diagnostics);
    verify(source, &parsed.program, &facts(), options)
}

fn run(source: &str) -> Report {
    run_with(source, &VerifyOptions::default())
}

/// The verdicts in order, as `proved`/`refuted`/`unknown`.
fn verdicts(report: &Report) -> Vec<&'static str> {
    report
        .assertions
        .iter()
        .map(|a| match a.verdict {
            VerdictData::Proved => "proved",
            VerdictData::Refuted { .. } => "refuted",
            VerdictData::Unknown { .. } => "unknown",
        })
        .collect()
}

fn cex(a: &AssertionData) -> &CounterexampleData {
    match &a.verdict {
        VerdictData::Refuted { counterexample } => counterexample,
        other => panic!("{}: expected a refutation, got {other:?}", a.text),
    }
}

fn input<'a>(c: &'a CounterexampleData, name: &str) -> &'a str {
    c.inputs
        .iter()
        .find(|i| i.name == name)
        .map(|i| i.shown.as_str())
        .unwrap_or_else(|| panic!("no {name} in {c}"))
}

#[test]
fn integer_rules() {
    let r = run(r#"
kprobe:f
{
    assert(arg0 / 0 == 0, "BPF: division by zero is 0");
    assert(arg0 % 0 == arg0, "BPF: modulo by zero leaves the dividend");
    assert((int64)(uint8)200 == -56, "casts extend by the target type");
    assert((uint8)arg0 <= 255);
    assert(-1 > 0 == 0, "signed comparison of signed operands");
    assert((uint64)-1 > 0, "unsigned when one side is unsigned");
    assert(((int64)-8 >> 1) > 0, "right shift is logical");
    assert(1 << 65 == 2, "shift amounts wrap at the width");
    assert(bswap((uint16)0x1234) == 0x3412);
    assert(bswap(bswap((uint32)arg1)) == (uint32)arg1);
    assert(((arg2 >> 8) & 0xff | ((arg2 & 0xff) << 8)) == bswap((uint16)arg2), "the ntohs idiom is bswap");
    assert(!5 == 0 && !0 == 1);
    assert(-(int64)arg0 + arg0 == 0);
}
"#);
    assert!(r.all_proved(), "{:#?}", r.assertions);
}

#[test]
fn wraparound_is_refuted_with_the_boundary() {
    let r = run("kprobe:f { $sum = arg0 + 1; assert($sum > arg0); }");
    let c = cex(&r.assertions[0]);
    assert_eq!(
        input(c, "arg0"),
        "18446744073709551615 (0xffffffffffffffff)"
    );
}

#[test]
fn binop_width_follows_the_version() {
    // Two 16-bit fields: 0.17 adds in 64 bits, 0.22 in 16 (and wraps).
    let source =
        "tracepoint:sock:inet_sock_set_state { assert(args->sport + args->dport >= args->sport); }";
    assert_eq!(verdicts(&run(source)), ["proved"]);
    let new = VerifyOptions {
        version: (0, 22),
        ..VerifyOptions::default()
    };
    let r = run_with(source, &new);
    assert_eq!(verdicts(&r), ["refuted"]);
}

#[test]
fn builtins_have_their_widths() {
    let r = run("kprobe:f { assert(pid <= 0xffffffff); assert(cpu < 0x100000000); assert(nsecs < 0xffffffffffffffff); }");
    assert_eq!(verdicts(&r), ["proved", "proved", "refuted"]);
    assert!(r.assertions[0].text.starts_with("assert(pid"));
}

#[test]
fn field_types_come_from_the_facts_and_unknown_fields_are_noted() {
    let r = run(
        "tracepoint:sched:sched_process_exec { assert(args->pid >= 0); assert(args->nope == 1); }",
    );
    // pid_t is a signed 32-bit field.
    assert_eq!(verdicts(&r), ["refuted", "refuted"]);
    assert!(input(cex(&r.assertions[0]), "args->pid").starts_with('-'));
    assert!(
        r.notes.iter().any(|n| n.contains("args->nope")),
        "{:?}",
        r.notes
    );
}

#[test]
fn predicates_and_assumptions_are_path_conditions() {
    let r = run(r#"
tracepoint:syscalls:sys_exit_read
/args->ret > 0/
{
    assert(args->ret != 0);
    assume(args->ret < 100);
    assert(args->ret < 100);
    assert(args->ret < 50);
}
"#);
    assert_eq!(verdicts(&r), ["proved", "proved", "refuted"]);
    let c = cex(&r.assertions[2]);
    let v: i64 = input(c, "args->ret")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..100).contains(&v), "{c}");
}

#[test]
fn assertions_before_an_assume_do_not_see_it() {
    let r = run("kprobe:f { assert(arg0 != 7); assume(arg0 != 7); assert(arg0 != 7); }");
    assert_eq!(verdicts(&r), ["refuted", "proved"]);
    assert_eq!(input(cex(&r.assertions[0]), "arg0"), "7");
}

#[test]
fn unreachable_assertions_are_vacuous() {
    let r = run("kretprobe:f { if (retval < 0) { assert(0); } return; assert(0); }");
    assert_eq!(verdicts(&r), ["proved", "proved"]);
    assert!(r.assertions.iter().all(|a| a.vacuous));
    let r = run("kprobe:f { assume(arg0 == 1); assume(arg0 == 2); assert(0); }");
    assert!(r.assertions[0].vacuous);
    let r = run("kprobe:f { assume(arg0 == 1); assert(arg0 == 1); }");
    assert!(!r.assertions[0].vacuous);
}

#[test]
fn branches_merge_and_variables_start_at_zero() {
    let r = run(r#"
kprobe:f
{
    if (arg0 > 10) { $x = 1; } else if (arg0 > 5) { $x = 2; }
    assert($x <= 2);
    assert($x != 0 || arg0 <= 5);
    assert($x == 0);
}
"#);
    assert_eq!(verdicts(&r), ["proved", "proved", "refuted"]);
}

#[test]
fn ternaries_and_short_circuit() {
    let r = run(r#"
kprobe:f
{
    $m = arg0 > arg1 ? arg0 : arg1;
    assert($m >= arg0 && $m >= arg1);
    $y = 0;
    if (arg0 == 0 || arg1 / arg0 > 1) { $y = 1; }
    assert($y == 1 || arg1 / arg0 <= 1);
}
"#);
    assert!(r.all_proved(), "{:#?}", r.assertions);
}

#[test]
fn maps_read_back_what_the_path_wrote() {
    let r = run(r#"
kprobe:f
{
    @last[tid] = arg0;
    assert(@last[tid] == arg0);
    assert(@other[tid] == @other[tid], "uninterpreted: equal keys, equal values");
    delete(@last[tid]);
    assert(@last[tid] == 0);
    @count[pid] = count();
    assert(@seen[pid] == 0);
}
"#);
    assert_eq!(verdicts(&r), ["proved", "proved", "proved", "refuted"]);
    // The map's content before the firing is an input, named as written.
    assert_ne!(input(cex(&r.assertions[3]), "@seen[pid]"), "0");
}

#[test]
fn strings_compare_and_print() {
    let r = run(r#"
kprobe:f
/comm == "bash"/
{
    printf("%s opened\n", comm);
    assert(comm != "zsh");
    assert(strncmp(comm, "bas", 3) == 0);
    assert(comm == "sh");
}
"#);
    assert_eq!(verdicts(&r), ["proved", "proved", "refuted"]);
    let c = cex(&r.assertions[2]);
    assert_eq!(input(c, "comm"), "\"bash\"");
    assert_eq!(c.printed, ["bash opened\n"]);
}

#[test]
fn counterexamples_print_like_bpftrace() {
    // %d shows the low 32 bits of the 64-bit value: 2^32 prints as 0.
    let r = run(r#"
kprobe:f
{
    assume(arg0 == 0x100000000);
    printf("%d %lu %x\n", arg0, arg0, arg0);
    assert(0);
}
"#);
    assert_eq!(cex(&r.assertions[0]).printed, ["0 4294967296 0\n"]);
}

#[test]
fn printed_lines_are_those_of_the_path() {
    let r = run(r#"
kprobe:f
{
    if (arg0 > 5) { printf("big %d\n", arg0); } else { printf("small %d\n", arg0); }
    printf("done\n");
    assert(arg0 != 3);
    printf("after\n");
}
"#);
    assert_eq!(cex(&r.assertions[0]).printed, ["small 3\n", "done\n"]);
}

#[test]
fn loops_unroll_and_bounds_give_unknown() {
    let r = run(r#"
kprobe:f
{
    $i = 0; $s = 0;
    unroll(4) { $s = $s + 2; $i++; }
    assert($s == 8 && $i == 4);
    $j = 0;
    while ($j < 5) { $j++; if ($j == 3) { break; } }
    assert($j == 3);
}
"#);
    assert!(r.all_proved(), "{:#?}", r.assertions);
    let r = run("kprobe:f { $j = 0; while ($j < arg0) { $j++; } assert($j <= 100); }");
    match &r.assertions[0].verdict {
        VerdictData::Unknown {
            reason: UnknownReasonData::LoopBound { iterations, .. },
        } => assert_eq!(*iterations, 32),
        other => panic!("{other:?}"),
    }
    // A refutation within the bound is still a refutation.
    let r = run("kprobe:f { $j = 0; while ($j < arg0) { $j++; } assert($j != 3); }");
    assert_eq!(input(cex(&r.assertions[0]), "arg0"), "3");
}

#[test]
fn unsupported_constructs_make_unknowns_that_say_what() {
    let r = run(r#"
kprobe:f
{
    $n = 0;
    for ($kv : @m) { $n = $n + 1; }
    assert($n < 10);
    assert(arg0 != 1);
}
"#);
    assert_eq!(verdicts(&r), ["unknown", "refuted"]);
    match &r.assertions[0].verdict {
        VerdictData::Unknown {
            reason: UnknownReasonData::Unsupported { construct, line },
        } => {
            assert!(construct.contains("for ($kv : @m)"), "{construct}");
            assert_eq!(*line, 5);
        }
        other => panic!("{other:?}"),
    }
    let r = run("kprobe:f { assert(SOME_CONSTANT != 2); }");
    assert!(matches!(
        r.assertions[0].verdict,
        VerdictData::Unknown { .. }
    ));
    assert!(r.notes.iter().any(|n| n.contains("SOME_CONSTANT")));
}

#[test]
fn defines_and_enums_are_constants() {
    let r = run("#define AF_INET6 10\ntracepoint:sock:inet_sock_set_state /args->family == AF_INET6/ { assert(args->family == 10); assert(TCP_ESTABLISHED == 1); }");
    assert!(r.all_proved(), "{:#?}", r.assertions);
}

#[test]
fn timeouts_are_unknown() {
    // Factoring a 64-bit product of two primes: far beyond 1 ms.
    let options = VerifyOptions {
        timeout_ms: 1,
        ..VerifyOptions::default()
    };
    let r = run_with(
        "kprobe:f { assume(arg0 > 1 && arg1 > 1 && arg0 < 0x100000000 && arg1 < 0x100000000); assert(arg0 * arg1 != 0xd2d2e9a3a8c5a49b); }",
        &options,
    );
    match &r.assertions[0].verdict {
        VerdictData::Unknown {
            reason: UnknownReasonData::Timeout { limit_ms },
        } => assert_eq!(*limit_ms, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_attach_point_with_its_own_fields_is_checked() {
    // `ret` is a signed long in sys_exit_read; raw_syscalls:sys_exit has it too.
    let r = run("tracepoint:syscalls:sys_exit_read, tracepoint:raw_syscalls:sys_exit { assert(args->ret >= 0); }");
    let c = cex(&r.assertions[0]);
    assert!(c.probe.starts_with("tracepoint:"), "{c}");
}

#[test]
fn struct_members_through_pointers() {
    let r = run(r#"
kprobe:tcp_connect
{
    $sk = (struct sock *)arg0;
    $family = $sk->__sk_common.skc_family;
    assert($family <= 0xffff);
    assert($family == ((struct sock *)arg0)->__sk_common.skc_family, "the same memory reads the same");
    assert($sk->__sk_common.skc_state < 0x100);
}
"#);
    assert!(r.all_proved(), "{:#?}", r.assertions);
}

#[test]
fn reports_serialise() {
    let r = run("kprobe:f { printf(\"%d\\n\", arg0); assert(arg0 != 5, \"not five\"); }");
    let text = serde_json::to_string(&r).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let a = &json["assertions"][0];
    assert_eq!(a["verdict"]["verdict"], "refuted");
    assert_eq!(a["message"], "not five");
    assert_eq!(a["line"], 1);
    assert_eq!(a["verdict"]["counterexample"]["inputs"][0]["name"], "arg0");
    assert_eq!(a["verdict"]["counterexample"]["inputs"][0]["value"], 5);
    assert_eq!(a["verdict"]["counterexample"]["printed"][0], "5\n");
    assert!(a["elapsed_ms"].is_number());
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back.assertions[0].verdict, r.assertions[0].verdict);
    assert_eq!(
        r.assertions[0].to_string(),
        "1:34: assert(arg0 != 5, \"not five\"): refuted in kprobe:f: arg0 = 5; prints \"5\""
    );
}

#[test]
fn quotients_name_their_dividends() {
    // Division by a constant is solved through a quotient constant: the
    // counterexample still gives the input it divides.
    let r = run("kprobe:f { $ms = arg0 / 1000; printf(\"%lu ms\\n\", $ms); assert($ms != 7); }");
    let c = cex(&r.assertions[0]);
    let v: u64 = input(c, "arg0").split(' ').next().unwrap().parse().unwrap();
    assert!((7000..8000).contains(&v), "{c}");
    assert_eq!(c.printed, ["7 ms\n"]);
    let r = run("kprobe:f { assert(arg0 % 10 < 10); assert(arg0 / 3 * 3 <= arg0); }");
    assert!(r.all_proved(), "{:#?}", r.assertions);
}
