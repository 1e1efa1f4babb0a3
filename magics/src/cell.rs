//! What a cell is: a `%%bpftrace` program, line magics, a natural-language request, or `X?`.

use std::time::Duration;

use clap::Parser;

use crate::registry::{MagicKind, MAGICS};

/// How many probe names `%probes` lists unless told otherwise.
pub const DEFAULT_PROBE_LIMIT: usize = 200;

/// Options of a `%%bpftrace` cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(name = "%%bpftrace", no_binary_name = true, disable_help_flag = true)]
pub struct BpftraceOptions {
    /// Stop the program after this long (5s, 500ms, 2m; a bare number is seconds).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Show at most this many output lines in the notebook; the rest go only to the log file.
    #[arg(long = "max-lines")]
    pub max_lines: Option<usize>,
    /// Show only the latest frame: each time() call starts a new one.
    #[arg(long)]
    pub watch: bool,
    /// Allow unsafe builtins such as system() and signal().
    #[arg(long = "unsafe")]
    pub allow_unsafe: bool,
    /// Run this shell command under the program (bpftrace -c): tracing ends when it exits,
    /// and `cpid` is its process id.
    #[arg(short = 'c', long = "command")]
    pub command: Option<String>,
    /// Attach even when the checks before load report errors.
    #[arg(long)]
    pub force: bool,
    /// Positional parameters of the program ($1, $2, ...), after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Options of a `%%verify` cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(name = "%%verify", no_binary_name = true, disable_help_flag = true)]
pub struct VerifyOptions {
    /// What the program is for, in English (the rules compare the two); by
    /// default the program's own `// Request:` line, if it has one.
    #[arg(long)]
    pub request: Option<String>,
    /// Only the program's own `assume`/`assert`: no contracts, no rules.
    #[arg(long = "no-annotate")]
    pub no_annotate: bool,
}

/// Options of a `%%nl` cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(name = "%%nl", no_binary_name = true, disable_help_flag = true)]
pub struct NlOptions {
    /// Ask this model instead of the configured one.
    #[arg(long)]
    pub model: Option<String>,
    /// Model attempts before asking the person for a hint (default 3).
    #[arg(long)]
    pub retries: Option<u32>,
    /// What the model should know (repeatable), typically after it gave up.
    #[arg(long)]
    pub hint: Vec<String>,
    /// Answer from the verified example library only.
    #[arg(long)]
    pub offline: bool,
    /// Attach the program as soon as it passes the checks (approval given up front).
    #[arg(long)]
    pub run: bool,
    /// With --run: stop the program after this long.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Skip loading candidates in the kernel (the verifier check) before accepting.
    #[arg(long = "no-load")]
    pub no_load: bool,
    /// Skip annotating candidates and verifying their assertions (Z3).
    #[arg(long = "no-verify")]
    pub no_verify: bool,
}

/// Arguments of `%llm`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(name = "%llm", no_binary_name = true, disable_help_flag = true)]
pub struct LlmArgs {
    /// `offline`, `online` or `reset` (back to the configuration); none: show.
    #[arg(value_parser = ["offline", "online", "reset"])]
    pub action: Option<String>,
    /// Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1.
    #[arg(long = "base-url")]
    pub base_url: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Name of the environment variable holding the API key (keys stay out of notebooks).
    #[arg(long = "api-key-env")]
    pub api_key_env: Option<String>,
    /// Limit on one model call (30s, 2m; a bare number is seconds).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(name = "%probes", no_binary_name = true, disable_help_flag = true)]
struct ProbesArgs {
    #[arg(short = 'v', long)]
    verbose: bool,
    #[arg(long, default_value_t = DEFAULT_PROBE_LIMIT)]
    limit: usize,
    pattern: Option<String>,
}

/// A `%line` magic with its parsed arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineMagic {
    Probes {
        verbose: bool,
        limit: usize,
        pattern: String,
    },
    Lsmagic,
    Help {
        topic: Option<String>,
    },
    /// `%llm`: show or set the model provider.
    Llm(LlmArgs),
}

/// A parsed cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Nothing to do (blank or comments only).
    Empty,
    /// A bpftrace program; `first_line` is the 1-based cell line where the program starts,
    /// so diagnostics can point at cell lines.
    Bpftrace {
        options: BpftraceOptions,
        program: String,
        first_line: usize,
    },
    /// One or more line magics, one per line.
    Lines(Vec<LineMagic>),
    /// A request in English.
    NaturalLanguage { options: NlOptions, request: String },
    /// A bpftrace program to annotate and verify, not to run.
    Verify {
        options: VerifyOptions,
        program: String,
    },
    /// `NAME?` or `?NAME`: show what is known about a probe, builtin or magic.
    Introspect { target: String },
}

/// Why a cell could not be parsed as magics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagicError {
    #[error("unknown magic `{spelled}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownMagic {
        spelled: String,
        suggestion: Option<String>,
    },
    #[error("{magic}: {message}")]
    BadArguments { magic: String, message: String },
    #[error("`%%{magic}` must be the first line of the cell")]
    CellMagicNotFirst { magic: String },
    #[error("a cell holds either line magics or other content, not both; line {line} is `{text}`")]
    MixedLineMagics { line: usize, text: String },
}

/// Probe providers (with bpftrace's short aliases) that can start a program.
const PROVIDERS: &[&str] = &[
    "tracepoint",
    "t",
    "kprobe",
    "k",
    "kretprobe",
    "kr",
    "uprobe",
    "u",
    "uretprobe",
    "ur",
    "usdt",
    "U",
    "profile",
    "p",
    "interval",
    "i",
    "software",
    "s",
    "hardware",
    "h",
    "kfunc",
    "f",
    "kretfunc",
    "fr",
    "fentry",
    "fexit",
    "rawtracepoint",
    "rt",
    "watchpoint",
    "w",
    "asyncwatchpoint",
    "aw",
    "iter",
    "it",
];

/// Parses a cell. Never panics; a malformed magic is an `Err` the kernel shows.
pub fn parse_cell(code: &str) -> Result<Cell, MagicError> {
    let trimmed = code.trim();
    if trimmed.is_empty() {
        return Ok(Cell::Empty);
    }
    let (first, rest) = split_first_line(code.trim_start_matches(['\n', '\r']));
    let leading_blank = code.len() - code.trim_start_matches(['\n', '\r']).len();
    let first_line_no = code[..leading_blank].matches('\n').count() + 1;

    if let Some(magic_line) = first.trim_start().strip_prefix("%%") {
        let (name, args) = split_name(magic_line);
        return parse_cell_magic(name, args, rest, first_line_no + 1);
    }
    if first.trim_start().starts_with('%') {
        return parse_line_magics(code);
    }
    if let Some(target) = introspection_target(trimmed) {
        return Ok(Cell::Introspect { target });
    }
    if looks_like_program(code) {
        return Ok(Cell::Bpftrace {
            options: BpftraceOptions::default(),
            program: code.to_string(),
            first_line: 1,
        });
    }
    if only_comments(code) {
        return Ok(Cell::Empty);
    }
    Ok(Cell::NaturalLanguage {
        options: NlOptions::default(),
        request: trimmed.to_string(),
    })
}

fn split_first_line(code: &str) -> (&str, &str) {
    match code.find('\n') {
        Some(i) => (code[..i].trim_end_matches('\r'), &code[i + 1..]),
        None => (code, ""),
    }
}

fn split_name(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

fn parse_cell_magic(
    name: &str,
    args: &str,
    body: &str,
    body_first_line: usize,
) -> Result<Cell, MagicError> {
    let words = split_args(&format!("%%{name}"), args)?;
    match name {
        "bpftrace" => {
            let options =
                BpftraceOptions::try_parse_from(&words).map_err(|e| bad_args("%%bpftrace", e))?;
            Ok(Cell::Bpftrace {
                options,
                program: body.to_string(),
                first_line: body_first_line,
            })
        }
        "verify" => {
            let options =
                VerifyOptions::try_parse_from(&words).map_err(|e| bad_args("%%verify", e))?;
            Ok(Cell::Verify {
                options,
                program: body.to_string(),
            })
        }
        "nl" => {
            let options = NlOptions::try_parse_from(&words).map_err(|e| bad_args("%%nl", e))?;
            Ok(Cell::NaturalLanguage {
                options,
                request: body.trim().to_string(),
            })
        }
        _ => Err(unknown_magic(name, MagicKind::Cell)),
    }
}

fn parse_line_magics(code: &str) -> Result<Cell, MagicError> {
    let mut magics = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let Some(spelled) = line.strip_prefix('%') else {
            return Err(MagicError::MixedLineMagics {
                line: i + 1,
                text: line.to_string(),
            });
        };
        if let Some(cell_magic) = spelled.strip_prefix('%') {
            return Err(MagicError::CellMagicNotFirst {
                magic: split_name(cell_magic).0.to_string(),
            });
        }
        let (name, args) = split_name(spelled);
        let words = split_args(&format!("%{name}"), args)?;
        let magic = match name {
            "probes" => {
                let a = ProbesArgs::try_parse_from(&words).map_err(|e| bad_args("%probes", e))?;
                LineMagic::Probes {
                    verbose: a.verbose,
                    limit: a.limit,
                    pattern: a.pattern.unwrap_or_else(|| "*".to_string()),
                }
            }
            "lsmagic" => LineMagic::Lsmagic,
            "llm" => {
                LineMagic::Llm(LlmArgs::try_parse_from(&words).map_err(|e| bad_args("%llm", e))?)
            }
            "help" => LineMagic::Help {
                topic: words.first().map(|w| w.trim_start_matches('%').to_string()),
            },
            _ => return Err(unknown_magic(name, MagicKind::Line)),
        };
        magics.push(magic);
    }
    Ok(Cell::Lines(magics))
}

fn split_args(magic: &str, args: &str) -> Result<Vec<String>, MagicError> {
    shlex::split(args).ok_or_else(|| MagicError::BadArguments {
        magic: magic.to_string(),
        message: "unbalanced quotes in the arguments".to_string(),
    })
}

fn bad_args(magic: &str, err: clap::Error) -> MagicError {
    // clap's rendering starts with "error: " and ends with a usage hint; keep the gist.
    let rendered = err.render().to_string();
    let message = rendered
        .lines()
        .map(|l| l.trim_start_matches("error: "))
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n");
    MagicError::BadArguments {
        magic: magic.to_string(),
        message,
    }
}

fn unknown_magic(name: &str, kind: MagicKind) -> MagicError {
    let prefix = if kind == MagicKind::Cell { "%%" } else { "%" };
    let suggestion = MAGICS
        .iter()
        .map(|m| (edit_distance(name, m.name), m))
        .filter(|(d, m)| *d <= 2.max(m.name.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, m)| m.spelled());
    MagicError::UnknownMagic {
        spelled: format!("{prefix}{name}"),
        suggestion,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `tracepoint:syscalls:sys_enter_openat?` or `?printf` alone in a cell.
fn introspection_target(trimmed: &str) -> Option<String> {
    if trimmed.contains(char::is_whitespace) {
        return None;
    }
    let target = trimmed
        .strip_suffix("??")
        .or_else(|| trimmed.strip_suffix('?'))
        .or_else(|| trimmed.strip_prefix("??"))
        .or_else(|| trimmed.strip_prefix('?'))?;
    (!target.is_empty()).then(|| target.to_string())
}

fn only_comments(code: &str) -> bool {
    code.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("//")
    })
}

/// A cell without magic is run as bpftrace when its first meaningful line starts with a
/// probe (`BEGIN`, `tracepoint:...`, `t:...`) and it has a block; English rarely does both.
fn looks_like_program(code: &str) -> bool {
    if !code.contains('{') {
        return false;
    }
    let mut in_block_comment = false;
    for line in code.lines() {
        let mut l = line.trim();
        if in_block_comment {
            match l.find("*/") {
                Some(i) => {
                    in_block_comment = false;
                    l = l[i + 2..].trim();
                }
                None => continue,
            }
        }
        if l.starts_with("/*") {
            if !l.contains("*/") {
                in_block_comment = true;
            }
            continue;
        }
        if l.is_empty()
            || l.starts_with("//")
            || l.starts_with("#include")
            || l.starts_with("#define")
        {
            continue;
        }
        let word: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if word == "BEGIN" || word == "END" || word == "config" {
            return true;
        }
        return l[word.len()..].starts_with(':') && PROVIDERS.contains(&word.as_str());
    }
    false
}

/// Parses `5s`, `500ms`, `2m`, `1h 30m`, or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && (0.0..1e9).contains(&secs) {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a usable number of seconds"));
    }
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (try 5s, 500ms or 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftrace_cell_with_options_and_args() {
        let cell = parse_cell("%%bpftrace --timeout 5s --max-lines 10 -c 'ls -l /tmp' -- 42 bash\nBEGIN { exit(); }\n")
            .unwrap();
        let Cell::Bpftrace {
            options,
            program,
            first_line,
        } = cell
        else {
            panic!("not a bpftrace cell: {cell:?}");
        };
        assert_eq!(options.timeout, Some(Duration::from_secs(5)));
        assert_eq!(options.max_lines, Some(10));
        assert_eq!(options.args, vec!["42", "bash"]);
        assert_eq!(options.command.as_deref(), Some("ls -l /tmp"));
        assert_eq!(program, "BEGIN { exit(); }\n");
        assert_eq!(first_line, 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3").is_err());
    }

    #[test]
    fn bad_option_names_the_problem() {
        let err = parse_cell("%%bpftrace --timeot 5s\nBEGIN {}").unwrap_err();
        let MagicError::BadArguments { magic, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(magic, "%%bpftrace");
        assert!(message.contains("--timeot"), "{message}");
        let err = parse_cell("%%bpftrace --timeout soon\nBEGIN {}").unwrap_err();
        assert!(err.to_string().contains("5s"), "{err}");
    }

    #[test]
    fn unknown_magics_get_suggestions() {
        let err = parse_cell("%probs tcp").unwrap_err();
        assert_eq!(
            err,
            MagicError::UnknownMagic {
                spelled: "%probs".into(),
                suggestion: Some("%probes".into())
            }
        );
        let err = parse_cell("%%bpftrce\nBEGIN{}").unwrap_err();
        assert!(err.to_string().contains("%%bpftrace"), "{err}");
        let err = parse_cell("%%frobnicate\n").unwrap_err();
        assert_eq!(
            err,
            MagicError::UnknownMagic {
                spelled: "%%frobnicate".into(),
                suggestion: None
            }
        );
    }

    #[test]
    fn line_magics() {
        assert_eq!(
            parse_cell("%probes -v t:syscalls:sys_enter_open*\n%lsmagic\n").unwrap(),
            Cell::Lines(vec![
                LineMagic::Probes {
                    verbose: true,
                    limit: DEFAULT_PROBE_LIMIT,
                    pattern: "t:syscalls:sys_enter_open*".into()
                },
                LineMagic::Lsmagic
            ])
        );
        assert_eq!(
            parse_cell("%help %%bpftrace").unwrap(),
            Cell::Lines(vec![LineMagic::Help {
                topic: Some("bpftrace".into())
            }])
        );
        assert!(matches!(
            parse_cell("%lsmagic\nBEGIN { }"),
            Err(MagicError::MixedLineMagics { line: 2, .. })
        ));
    }

    #[test]
    fn llm_magic_shows_switches_or_sets_the_provider() {
        assert_eq!(
            parse_cell("%llm").unwrap(),
            Cell::Lines(vec![LineMagic::Llm(LlmArgs::default())])
        );
        let Cell::Lines(m) = parse_cell("%llm offline").unwrap() else {
            panic!()
        };
        assert_eq!(
            m,
            vec![LineMagic::Llm(LlmArgs {
                action: Some("offline".into()),
                ..Default::default()
            })]
        );
        let Cell::Lines(m) = parse_cell(
            "%llm --base-url http://127.0.0.1:11434/v1 --model llama3 --api-key-env MY_KEY --timeout 30s",
        )
        .unwrap() else {
            panic!()
        };
        let LineMagic::Llm(args) = &m[0] else {
            panic!()
        };
        assert_eq!(args.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(args.model.as_deref(), Some("llama3"));
        assert_eq!(args.api_key_env.as_deref(), Some("MY_KEY"));
        assert_eq!(args.timeout, Some(Duration::from_secs(30)));
        assert!(matches!(
            parse_cell("%llm sideways"),
            Err(MagicError::BadArguments { .. })
        ));
    }

    #[test]
    fn verify_cells_take_a_request_and_keep_the_program() {
        let Cell::Verify { options, program } = parse_cell(
            "%%verify --request 'IPv4 and IPv6' --no-annotate\nBEGIN { assert(1 == 1, \"x\"); }",
        )
        .unwrap() else {
            panic!("not a verify cell");
        };
        assert_eq!(options.request.as_deref(), Some("IPv4 and IPv6"));
        assert!(options.no_annotate);
        assert_eq!(program, "BEGIN { assert(1 == 1, \"x\"); }");
        assert!(matches!(
            parse_cell("%%verify --bogus\nBEGIN {}"),
            Err(MagicError::BadArguments { .. })
        ));
    }

    #[test]
    fn nl_options_run_and_repeated_hints() {
        let Cell::NaturalLanguage { options, request } = parse_cell(
            "%%nl --run --timeout 5s --no-load --no-verify --hint a --hint 'b c'\nshow execs",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(request, "show execs");
        assert!(options.run && options.no_load && options.no_verify);
        assert_eq!(options.timeout, Some(Duration::from_secs(5)));
        assert_eq!(options.hint, vec!["a".to_string(), "b c".to_string()]);
    }

    #[test]
    fn programs_without_magic_are_recognised() {
        for code in [
            "BEGIN { printf(\"hi\\n\"); exit(); }",
            "// count opens\ntracepoint:syscalls:sys_enter_openat { @[comm] = count(); }",
            "#include <linux/sched.h>\nkprobe:do_nanosleep { }",
            "/* multi\n line */\nt:sched:sched_switch { }",
        ] {
            assert!(
                matches!(parse_cell(code), Ok(Cell::Bpftrace { .. })),
                "{code}"
            );
        }
    }

    #[test]
    fn english_is_a_request() {
        let cell = parse_cell("show which processes open files under /etc, with the path").unwrap();
        assert!(matches!(cell, Cell::NaturalLanguage { .. }));
        let cell =
            parse_cell("%%nl --offline --hint 'use openat'\ncount opens by process").unwrap();
        let Cell::NaturalLanguage { options, request } = cell else {
            panic!()
        };
        assert!(options.offline);
        assert_eq!(options.hint, vec!["use openat".to_string()]);
        assert_eq!(request, "count opens by process");
    }

    #[test]
    fn introspection() {
        assert_eq!(
            parse_cell("tracepoint:syscalls:sys_enter_openat?").unwrap(),
            Cell::Introspect {
                target: "tracepoint:syscalls:sys_enter_openat".into()
            }
        );
        assert_eq!(
            parse_cell("?printf").unwrap(),
            Cell::Introspect {
                target: "printf".into()
            }
        );
        assert_eq!(parse_cell("  \n// nothing\n").unwrap(), Cell::Empty);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for code in [
            "%",
            "%%",
            "%% ",
            "?",
            "??",
            "%%bpftrace '",
            "%probes '\"",
            "\u{feff}%x",
            "%%bpftrace\r\n",
        ] {
            let _ = parse_cell(code);
        }
    }
}
