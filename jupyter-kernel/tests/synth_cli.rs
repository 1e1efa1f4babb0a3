//! `kgent synth` as a user runs it: the built binary, the real checker against
//! this kernel, and a scripted OpenAI-compatible server on 127.0.0.1 standing
//! in for the model.
//!
//! Every run gets its own cache, config and home directories, so the user's
//! caches and LLM configuration are neither used nor touched. The example
//! library is a dozen shipped examples (`KGENT_EXAMPLES_DIR`) and its vector
//! index is built once per test binary: a debug build embeds ~0.6 s per
//! example, so the whole library would take minutes to index.

mod common;
use common::live;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kgent_llm::testing::{Script, ScriptedServer};
use serde_json::Value;

const REQUEST: &str = "show which processes open files under /etc";

/// The shipped examples the tests search: the ones for the request, and
/// neighbours from other areas so retrieval has to choose.
const EXAMPLES: &[&str] = &[
    "files-opens-under-etc",
    "security-sensitive-file-opens",
    "files-vfs-open-paths-kfunc",
    "files-failed-opens",
    "files-top-opened-paths",
    "basics-count-opens-by-comm",
    "basics-hello-world",
    "process-exec-trace",
    "net-tcp-connects",
    "block-io-latency",
    "sched-context-switches-by-comm",
    "syscalls-count-by-process",
];

const GOOD: &str = "Here it is:\n```bpftrace\ntracepoint:syscalls:sys_enter_openat\n/strncmp(str(args->filename), \"/etc/\", 5) == 0/\n{\n    printf(\"%d %s %s\\n\", pid, comm, str(args->filename));\n}\n```\n";

const TYPO: &str = "```bpftrace\ntracepoint:syscalls:sys_enter_opnat\n{\n    printf(\"%d %s %s\\n\", pid, comm, str(args->filename));\n}\n```\n";

/// What all runs share: the example subset, its vector index, and the
/// probe-type capabilities (copied into each run's cache so detection runs once).
struct Shared {
    examples: PathBuf,
    data: PathBuf,
    capabilities: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Inside the target directory: reused by later runs, never the user's.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth-cli");
        let examples = root.join("examples");
        let _ = std::fs::remove_dir_all(&examples);
        std::fs::create_dir_all(&examples).unwrap();
        let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples");
        for id in EXAMPLES {
            let name = format!("{id}.toml");
            std::fs::copy(specs.join(&name), examples.join(&name))
                .unwrap_or_else(|e| panic!("copy {name}: {e}"));
        }
        let shared = Shared {
            examples,
            data: root.join("data"),
            capabilities: root.join("seed-cache/kgent/capabilities.json"),
        };
        // One run builds the index and detects the capabilities before the
        // tests run side by side.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kgent"));
        cmd.args(["synth", "--offline", "--no-cache", "--json", REQUEST]);
        isolate(&mut cmd, &shared, &root.join("seed-home"));
        cmd.env("XDG_CACHE_HOME", root.join("seed-cache"));
        let out = cmd.output().expect("kgent runs");
        // Not fatal here: each test reports its own failure.
        if !out.status.success() {
            eprintln!("warm-up failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        shared
    })
}

/// No LLM configuration from the environment, no user directories.
fn isolate(cmd: &mut Command, shared: &Shared, home: &Path) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("KGENT_LLM_")
            || key.starts_with("KGENT_EMBEDDINGS_")
            || key.starts_with("OPENAI_")
        {
            cmd.env_remove(&*key);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", &shared.data)
        .env("KGENT_EXAMPLES_DIR", &shared.examples);
}

/// One user's machine: a home with its own caches.
struct User {
    home: tempfile::TempDir,
    llm: Option<String>,
}

impl User {
    fn new() -> User {
        let home = tempfile::tempdir().unwrap();
        let caps = home.path().join("cache/kgent/capabilities.json");
        std::fs::create_dir_all(caps.parent().unwrap()).unwrap();
        // Best effort: without it the run detects the capabilities itself.
        let _ = std::fs::copy(&shared().capabilities, caps);
        User { home, llm: None }
    }

    fn with_llm(base_url: String) -> User {
        User {
            llm: Some(base_url),
            ..User::new()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kgent"));
        cmd.arg("synth").args(args);
        isolate(&mut cmd, shared(), self.home.path());
        if let Some(url) = &self.llm {
            cmd.env("KGENT_LLM_BASE_URL", url)
                .env("KGENT_LLM_MODEL", "scripted-model")
                .env("KGENT_LLM_TIMEOUT", "20");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn synth(&self, args: &[&str]) -> Output {
        self.synth_stdin(args, "")
    }

    fn synth_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).spawn().expect("kgent runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

fn event_names(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"]["event"].as_str().unwrap().to_string())
        .collect()
}

/// The text of the last message of the `n`th chat request the server received.
fn last_message(server: &ScriptedServer, n: usize) -> String {
    let requests = server.requests();
    let messages = requests[n]["messages"].as_array().unwrap();
    messages.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn offline_answers_from_the_library_with_its_provenance() {
    if !live() {
        return;
    }
    let user = User::new();
    let out = user.synth(&["--offline", REQUEST]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let program = stdout(&out);
    assert!(program.contains("openat"), "{program}");
    // The header says what was asked and where the program came from; nothing else is on stdout.
    assert!(
        program.starts_with(&format!("// Request: {REQUEST}\n// Kgent: retrieved")),
        "{program}"
    );
    assert!(!program.contains("%%bpftrace"), "{program}");
    let err = stderr(&out);
    assert!(err.contains("ms] accepted: retrieved"), "{err}");

    let out = user.synth(&["--offline", "--no-cache", "--json", REQUEST]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"], "accepted");
    assert_eq!(
        v["provenance"]["retrieved"]["example_id"],
        "files-opens-under-etc"
    );
    assert!(v["program"].as_str().unwrap().contains("openat"));
    assert_eq!(v["attempts"], 0);
    assert_eq!(v["from_cache"], false);
    assert!(v["timings_ms"]["total"].is_u64());
}

#[test]
fn a_correct_reply_is_accepted_at_the_first_attempt() {
    if !live() {
        return;
    }
    let server = ScriptedServer::start(vec![Script::reply(GOOD)]);
    let user = User::with_llm(server.base_url());
    let out = user.synth(&["--json", "--no-verify", REQUEST]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["result"], "accepted");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["accepted_attempt"], 1);
    assert!(v["provenance"]["synthesised"]["model"]
        .as_str()
        .unwrap()
        .contains("scripted-model"));
    assert!(v["program"]
        .as_str()
        .unwrap()
        .starts_with("tracepoint:syscalls:sys_enter_openat"));
    let names = event_names(&v);
    for expected in ["started", "retrieved", "prompting", "candidate", "accepted"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    // The streamed reply is one event, not one per token.
    assert_eq!(
        names.iter().filter(|n| *n == "token").count(),
        1,
        "{names:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_wrong_attach_point_is_fixed_from_the_checker_feedback() {
    if !live() {
        return;
    }
    let server = ScriptedServer::start(vec![Script::reply(TYPO), Script::reply(GOOD)]);
    let user = User::with_llm(server.base_url());
    let out = user.synth(&["--no-verify", REQUEST]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("attempt 1: 1 error(s)"), "{err}");
    assert!(err.contains("accepted at attempt 2"), "{err}");
    assert!(err.contains("tokens"), "{err}");
    let program = stdout(&out);
    assert!(
        program.contains("// Kgent: synthesised by scripted-model"),
        "{program}"
    );
    assert!(program.contains("sys_enter_openat\n"), "{program}");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let feedback = last_message(&server, 1);
    assert!(feedback.contains("unknown-probe"), "{feedback}");
    assert!(
        feedback.contains("replace `sys_enter_opnat` with `sys_enter_openat`"),
        "{feedback}"
    );
}

#[test]
fn three_bad_replies_ask_for_a_hint() {
    if !live() {
        return;
    }
    let server = ScriptedServer::start(vec![
        Script::reply(TYPO),
        Script::reply("I am not sure what you mean."),
        Script::reply(TYPO),
    ]);
    let user = User::with_llm(server.base_url());
    let out = user.synth(&[REQUEST]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("gave up after 3 attempt(s)"), "{err}");
    assert!(err.contains("--hint"), "{err}");
    assert!(err.contains("unknown-probe"), "{err}");
    assert_eq!(server.requests().len(), 3);

    let server = ScriptedServer::start(vec![Script::reply(TYPO), Script::reply(TYPO)]);
    let user = User::with_llm(server.base_url());
    let out = user.synth(&["--json", "--retries", "2", "--hint", "use openat", REQUEST]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["result"], "gave_up");
    assert_eq!(v["attempts"], 2);
    assert!(v["ask"].as_str().unwrap().contains("tracepoint"), "{v}");
    assert_eq!(v["last_diagnostics"][0]["code"], "unknown-probe");
    assert!(server.requests()[0].to_string().contains("use openat"));
}

#[test]
fn an_unreachable_endpoint_says_to_go_offline() {
    if !live() {
        return;
    }
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = User::with_llm(format!("http://127.0.0.1:{port}/v1"));
    let started = Instant::now();
    let out = user.synth(&[REQUEST]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains("--offline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let out = user.synth(&["--json", REQUEST]);
    let v = json(&out);
    assert_eq!(v["result"], "llm_unavailable");
    assert_eq!(v["ok"], false);
    assert!(v["message"].as_str().unwrap().contains("unreachable"));
}

#[test]
fn the_second_run_replays_the_cache() {
    if !live() {
        return;
    }
    let user = User::new();
    let first = user.synth(&["--offline", "--json", REQUEST]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first = json(&first);
    assert_eq!(first["from_cache"], false);
    // The same request from standard input (with a newline) is the same request.
    let second = user.synth_stdin(&["--offline", "--json", "-"], &format!("{REQUEST}\n"));
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let second = json(&second);
    assert_eq!(second["from_cache"], true);
    assert_eq!(second["cache_key"], first["cache_key"]);
    assert_eq!(second["program"], first["program"]);
    assert!(event_names(&second).contains(&"cache_hit".to_string()));
    // --no-cache neither reads nor writes it.
    let third = json(&user.synth(&["--offline", "--json", "--no-cache", REQUEST]));
    assert_eq!(third["from_cache"], false);
}

#[test]
fn usage_errors_exit_two() {
    let user = User::new();
    let out = user.synth(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = user.synth(&["   "]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the request is empty"));
    let out = user.synth_stdin(&["-"], "\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = user.synth(&["--retries", "0", REQUEST]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = user.synth(&["--offline", "--model", "m", REQUEST]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A configuration that cannot work is the user's to fix, not a failed synthesis.
    let mut cmd = user.command(&[REQUEST]);
    cmd.env("KGENT_LLM_BASE_URL", "http://127.0.0.1:9/v1");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("KGENT_LLM_MODEL"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_while_the_model_thinks_ends_the_command() {
    if !live() {
        return;
    }
    let server = ScriptedServer::start(vec![Script::delayed(
        Duration::from_secs(15),
        Script::reply(GOOD),
    )]);
    let user = User::with_llm(server.base_url());
    let child = user.command(&[REQUEST]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests().is_empty() {
        assert!(Instant::now() < deadline, "the model was never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    // SAFETY: signals our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_refuted_program_is_repaired_and_its_verification_reported() {
    if !live() {
        return;
    }
    let Some(verifier) = common::verifier() else {
        return;
    };
    const IPV4_ONLY: &str = "```bpftrace\ntracepoint:sock:inet_sock_set_state\n/args->family == 2/\n{\n    printf(\"%d -> %d\\n\", args->oldstate, args->newstate);\n}\n```";
    let both = IPV4_ONLY.replace(
        "/args->family == 2/",
        "/args->family == 2 || args->family == 10/",
    );
    // Candidate, its annotation (unchanged: nothing to add), fixed candidate, annotation.
    let server = ScriptedServer::start(vec![
        Script::reply(IPV4_ONLY),
        Script::reply(IPV4_ONLY),
        Script::reply(both.clone()),
        Script::reply(both),
    ]);
    let user = User::with_llm(server.base_url());
    let out = user
        .command(&["--json", "TCP state changes of IPv4 and IPv6 connections"])
        .env("KGENT_VERIFIER", &verifier)
        .output()
        .expect("kgent runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["accepted_attempt"], 2);
    let feedback = last_message(&server, 2);
    assert!(
        feedback.contains("the verifier refuted 1 assertion"),
        "{feedback}"
    );
    let verdicts: Vec<&str> = v["verification"]["report"]["assertions"]
        .as_array()
        .expect("assertions")
        .iter()
        .map(|a| a["verdict"]["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["proved", "proved"], "{}", v["verification"]);
    let names = event_names(&v);
    assert_eq!(
        names.iter().filter(|n| *n == "verified").count(),
        2,
        "{names:?}"
    );
    assert!(v["timings_ms"]["verify"].as_u64().is_some());
}
