//! The person's own library: every program they approve is kept here and
//! merged into the shipped library ([`crate::Library::with_user`]), so a
//! later request can retrieve it.
//!
//! On disk: an LMDB environment of its own in
//! `$XDG_DATA_HOME/kgent/user-library` (else
//! `~/.local/share/kgent/user-library`), one database `approved`:
//! key = example id, value = a JSON record with a `format` number.
//!
//! Why not a database inside the vector index's environment: the index is a
//! cache (deleting `kgent/index` costs a rebuild), approved programs exist
//! nowhere else. Separate environments keep "clear the cache" from ever
//! losing them, and a full or damaged index from touching them.
//!
//! Concurrency: every [`UserLibrary::add`] and [`UserLibrary::remove`] is one
//! LMDB write transaction, which is also LMDB's cross-process writer lock.
//! `add` reads the record it replaces inside that transaction, so two kernels
//! approving the same program merge their requests instead of one losing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use heed::types::Bytes;
use heed::{CommitOrAbort, Env, WithoutTls};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, RetrievalError};
use crate::library::{Example, OutputKind};
use crate::lmdb::{open_env, open_shared, Registry};
use crate::store::kgent_data_dir;

/// Ids of approved examples start with this. Not `user-`: that is the
/// shipped library's area for user-space probes (`user-bash-commands`, ...).
pub const USER_ID_PREFIX: &str = "approved-";

/// The tag every approved example carries. Not `user`, for the same reason:
/// BM25 weighs tags, and the shipped `user` examples are tagged `user`, so a
/// request about user-space functions would lean towards every approved
/// program.
pub const USER_TAG: &str = "approved";

/// The record format written by this version. A reader skips (with a
/// warning) records of a newer format and never overwrites them.
pub const USER_FORMAT: u32 = 1;

/// Distinct requests kept per program, most recent first.
const MAX_REQUESTS: usize = 8;

/// Address space, not disk: at ~2 KiB a record, room for >100,000 programs.
const MAP_SIZE: usize = 256 << 20;

const DB_NAME: &str = "approved";

/// `origin` of errors about approved examples.
const ORIGIN: &str = "<user library>";

/// Envs opened by this process, by canonical path: heed refuses to open one
/// environment twice in a process, so every `UserLibrary` for a directory
/// shares one (as `VectorStore` does for its own directories).
static OPEN_LIBRARIES: LazyLock<Registry<Inner>> = LazyLock::new(Default::default);

struct Inner {
    dir: PathBuf,
    env: Env<WithoutTls>,
    db: heed::Database<'static, Bytes, Bytes>,
}

/// The approved programs of this user. Cheap to clone; clones share the
/// LMDB environment.
#[derive(Clone)]
pub struct UserLibrary {
    inner: Arc<Inner>,
}

/// A program the person approved, as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// What they asked, in their words.
    pub request: String,
    /// The program they approved.
    pub program: String,
    /// Every probe provider the program uses (`tracepoint`, `kprobe`,
    /// `BEGIN`, ...), as in the example files.
    pub probe_types: Vec<String>,
    /// Where the program came from, for the person reading the library:
    /// "synthesised by gpt-4o-mini", "retrieved example files-opens-under-etc".
    pub source: String,
    /// What it prints; `None` guesses from the program (hist/lhist,
    /// interval probe, aggregations, else lines).
    pub output: Option<OutputKind>,
    /// The bpftrace version it was checked with, stored as the example's
    /// `min_bpftrace` (the one version known to work); `None` stores
    /// `"unknown"`.
    pub bpftrace_version: Option<String>,
}

impl Approved {
    /// An approval with the output guessed and no bpftrace version.
    pub fn new(
        request: impl Into<String>,
        program: impl Into<String>,
        probe_types: impl IntoIterator<Item = impl Into<String>>,
        source: impl Into<String>,
    ) -> Approved {
        Approved {
            request: request.into(),
            program: program.into(),
            probe_types: probe_types.into_iter().map(Into::into).collect(),
            source: source.into(),
            output: None,
            bpftrace_version: None,
        }
    }
}

/// What reading the user library found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserExamples {
    /// The usable examples, in id order.
    pub examples: Vec<Example>,
    /// One line per record that was skipped (corrupt, invalid, or written by
    /// a newer kgent), for the person.
    pub warnings: Vec<String>,
}

/// Format 1 of a stored record. The example is derived from it when read,
/// so a later version can change how descriptions are written without
/// migrating data. Unknown fields are ignored, so fields may be added
/// within format 1; anything else needs format 2 and a migration in
/// [`decode`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordV1 {
    format: u32,
    program: String,
    /// Distinct requests, most recent first; the first is the example's.
    requests: Vec<String>,
    probe_types: Vec<String>,
    output: OutputKind,
    bpftrace_version: Option<String>,
    /// The latest approval's source.
    source: String,
    approvals: u64,
    /// Seconds since the epoch.
    first_approved: u64,
    last_approved: u64,
}

enum Decoded {
    V1(RecordV1),
    Newer(u32),
    Corrupt(String),
}

fn decode(bytes: &[u8]) -> Decoded {
    #[derive(Deserialize)]
    struct Header {
        format: u32,
    }
    let header: Header = match serde_json::from_slice(bytes) {
        Ok(h) => h,
        Err(e) => return Decoded::Corrupt(format!("not a record: {e}")),
    };
    match header.format {
        1 => match serde_json::from_slice(bytes) {
            Ok(r) => Decoded::V1(r),
            Err(e) => Decoded::Corrupt(format!("format 1 record: {e}")),
        },
        n if n > USER_FORMAT => Decoded::Newer(n),
        n => Decoded::Corrupt(format!("unknown format {n}")),
    }
}

impl UserLibrary {
    /// `$XDG_DATA_HOME/kgent/user-library`, else
    /// `~/.local/share/kgent/user-library`.
    pub fn default_dir() -> Result<PathBuf> {
        Ok(kgent_data_dir()?.join("user-library"))
    }

    /// Opens the library in [`UserLibrary::default_dir`].
    pub fn open_default() -> Result<UserLibrary> {
        UserLibrary::open(UserLibrary::default_dir()?)
    }

    /// Opens (creating if needed) the library in `dir`. Within one process,
    /// opening the same directory twice returns the same library. `dir`
    /// must not also be a [`crate::VectorStore`] directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<UserLibrary> {
        let inner = open_shared(&OPEN_LIBRARIES, dir.as_ref(), |canonical| {
            let err = |source| RetrievalError::UserLibrary {
                path: canonical.clone(),
                source,
            };
            let env = open_env(&canonical, MAP_SIZE, 1).map_err(err)?;
            let wtxn = env.write_txn().map_err(err)?;
            let db = env
                .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                    let db = dbo.create_database(wtxn, Some(DB_NAME))?;
                    Ok(CommitOrAbort::<_, ()>::Commit(db))
                })
                .map_err(err)?
                .unwrap_commit();
            Ok(Inner {
                dir: canonical,
                env,
                db,
            })
        })?;
        Ok(UserLibrary { inner })
    }

    /// The directory of the LMDB environment.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn heed_err(&self) -> impl Fn(heed::Error) -> RetrievalError + '_ {
        move |source| RetrievalError::UserLibrary {
            path: self.inner.dir.clone(),
            source,
        }
    }

    /// The id an approved `program` gets: [`USER_ID_PREFIX`] and the first
    /// 12 hex digits of the SHA-256 of the program, after trailing blanks,
    /// CRLFs and blank first and last lines are dropped (they change
    /// nothing for bpftrace, so they should not make a second entry).
    pub fn id_for(program: &str) -> String {
        let digest = Sha256::digest(normalize_program(program).as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{USER_ID_PREFIX}{hex}")
    }

    /// Stores an approved program and returns its example.
    ///
    /// Approving a program already here (same id) updates its entry: the new
    /// request becomes the example's request and the earlier ones are kept
    /// (up to 8, most recent first) in its description, so every phrasing
    /// the person used keeps retrieving it. Probe types, output, version and
    /// source are the latest approval's.
    ///
    /// Fails, storing nothing, when the result would not be a valid example
    /// (empty request, program or probe types), or when the entry was
    /// written by a newer kgent (it is not downgraded).
    pub fn add(&self, approved: Approved) -> Result<Example> {
        let program = normalize_program(&approved.program);
        let id = UserLibrary::id_for(&program);
        let request = one_line(&approved.request);
        let mut probe_types: Vec<String> = Vec::new();
        for p in &approved.probe_types {
            let p = p.trim();
            if !p.is_empty() && !probe_types.iter().any(|q| q == p) {
                probe_types.push(p.to_string());
            }
        }
        let source = one_line(&approved.source);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut record = RecordV1 {
            format: USER_FORMAT,
            output: approved.output.unwrap_or_else(|| guess_output(&program)),
            program,
            requests: vec![request.clone()],
            probe_types,
            bpftrace_version: approved
                .bpftrace_version
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            source: if source.is_empty() {
                "not recorded".into()
            } else {
                source
            },
            approvals: 1,
            first_approved: now,
            last_approved: now,
        };
        let invalid = |reason: String| RetrievalError::Invalid {
            origin: ORIGIN.into(),
            id: id.clone(),
            reason,
        };
        // Checked before taking the writer lock, so a bad approval never
        // waits for another kernel's write.
        to_example(&id, &record).map_err(invalid)?;

        let mut wtxn = self.inner.env.write_txn().map_err(self.heed_err())?;
        let previous = self
            .inner
            .db
            .get(&wtxn, id.as_bytes())
            .map_err(self.heed_err())?
            .map(decode);
        match previous {
            Some(Decoded::V1(old)) => {
                let earlier = old
                    .requests
                    .into_iter()
                    .filter(|r| !r.eq_ignore_ascii_case(&request));
                record.requests.extend(earlier);
                record.requests.truncate(MAX_REQUESTS);
                record.approvals = old.approvals.saturating_add(1);
                record.first_approved = old.first_approved.min(now);
            }
            Some(Decoded::Newer(n)) => {
                return Err(invalid(format!(
                    "stored in format {n} by a newer kgent (this one writes {USER_FORMAT}); \
                     left as it is"
                )))
            }
            // A damaged record under this id is replaced by a good one.
            Some(Decoded::Corrupt(_)) | None => {}
        }
        let example = to_example(&id, &record).map_err(invalid)?;
        let bytes = serde_json::to_vec(&record).map_err(|e| invalid(e.to_string()))?;
        self.inner
            .db
            .put(&mut wtxn, id.as_bytes(), &bytes)
            .map_err(self.heed_err())?;
        wtxn.commit().map_err(self.heed_err())?;
        Ok(example)
    }

    /// Every usable example, in id order, and a warning for each record
    /// skipped. A damaged record never fails the whole read.
    pub fn load(&self) -> Result<UserExamples> {
        let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
        let mut out = UserExamples::default();
        for entry in self.inner.db.iter(&rtxn).map_err(self.heed_err())? {
            let (key, value) = entry.map_err(self.heed_err())?;
            let id = String::from_utf8_lossy(key);
            let skipped = |reason: String| format!("user library: `{id}` skipped: {reason}");
            if std::str::from_utf8(key).is_err() {
                out.warnings.push(skipped("the key is not UTF-8".into()));
                continue;
            }
            match decode(value) {
                Decoded::V1(record) => match to_example(&id, &record) {
                    Ok(example) => out.examples.push(example),
                    Err(reason) => out.warnings.push(skipped(reason)),
                },
                Decoded::Newer(n) => out.warnings.push(skipped(format!(
                    "written in format {n} by a newer kgent (this one reads {USER_FORMAT})"
                ))),
                Decoded::Corrupt(reason) => out.warnings.push(skipped(reason)),
            }
        }
        Ok(out)
    }

    /// [`UserLibrary::load`] without the warnings.
    pub fn examples(&self) -> Result<Vec<Example>> {
        Ok(self.load()?.examples)
    }

    /// The example with this id; `None` when there is none or its record
    /// cannot be read.
    pub fn get(&self, id: &str) -> Result<Option<Example>> {
        let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
        let value = self
            .inner
            .db
            .get(&rtxn, id.as_bytes())
            .map_err(self.heed_err())?;
        Ok(match value.map(decode) {
            Some(Decoded::V1(record)) => to_example(id, &record).ok(),
            _ => None,
        })
    }

    /// Deletes the entry with this id; false when there was none.
    pub fn remove(&self, id: &str) -> Result<bool> {
        let mut wtxn = self.inner.env.write_txn().map_err(self.heed_err())?;
        let removed = self
            .inner
            .db
            .delete(&mut wtxn, id.as_bytes())
            .map_err(self.heed_err())?;
        wtxn.commit().map_err(self.heed_err())?;
        Ok(removed)
    }

    /// Records stored, skipped ones included.
    pub fn len(&self) -> Result<usize> {
        let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
        let n = self.inner.db.len(&rtxn).map_err(self.heed_err())?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The example a record stands for, or why it is not a valid one.
fn to_example(id: &str, record: &RecordV1) -> std::result::Result<Example, String> {
    let request = record.requests.first().cloned().unwrap_or_default();
    let example = Example {
        id: id.to_string(),
        request,
        description: describe(record),
        tags: vec![USER_TAG.to_string()],
        probe_types: record.probe_types.clone(),
        min_bpftrace: record
            .bpftrace_version
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        output: record.output,
        parameters: Vec::new(),
        program: record.program.clone(),
    };
    example.validate()?;
    Ok(example)
}

/// The description: the requests (BM25 and the description vector then find
/// the program by every phrasing) and the source. Deliberately no counts or
/// dates: approving the same program for the same request again must leave
/// the example, and so the library version and the index, unchanged.
fn describe(record: &RecordV1) -> String {
    let mut requests = record.requests.iter();
    let mut s = match requests.next() {
        Some(first) => format!("Approved on this machine for \"{first}\""),
        None => "Approved on this machine".to_string(),
    };
    let others: Vec<String> = requests.map(|r| format!("\"{r}\"")).collect();
    if !others.is_empty() {
        s.push_str("; also asked as ");
        s.push_str(&others.join(", "));
    }
    s.push_str(". Source: ");
    s.push_str(&record.source);
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// Whitespace runs (newlines included) as one space, trimmed.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// LF line ends, no trailing blanks, no blank first or last lines, one final
/// newline. bpftrace string literals cannot span lines, so this never
/// changes what a program means.
fn normalize_program(program: &str) -> String {
    let lines: Vec<&str> = program
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .collect();
    let start = lines.iter().position(|l| !l.is_empty());
    let end = lines.iter().rposition(|l| !l.is_empty());
    match (start, end) {
        (Some(a), Some(b)) => {
            let mut s = lines[a..=b].join("\n");
            s.push('\n');
            s
        }
        _ => String::new(),
    }
}

/// Whether `name(` occurs in `program` as a call (not as the tail of a
/// longer identifier).
fn calls(program: &str, name: &str) -> bool {
    let pattern = format!("{name}(");
    program.match_indices(&pattern).any(|(i, _)| {
        !program[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// What a program prints, guessed from its text: agrees with the `output`
/// key of 240 of the 243 shipped examples (fixed-duration runs with an
/// `interval` probe that only exits are `map` there, `periodic` here).
fn guess_output(program: &str) -> OutputKind {
    let interval = program.match_indices("interval:").any(|(i, _)| {
        !program[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if interval {
        OutputKind::Periodic
    } else if calls(program, "hist") || calls(program, "lhist") {
        OutputKind::Histogram
    } else if ["count", "sum", "avg", "min", "max", "stats"]
        .iter()
        .any(|f| calls(program, f))
    {
        OutputKind::Map
    } else {
        OutputKind::Lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_ignores_line_ends_and_blank_edges() {
        let a = "BEGIN { printf(\"hi\\n\"); exit(); }\n";
        let b = "\r\n\nBEGIN { printf(\"hi\\n\"); exit(); }   \r\n\n";
        assert_eq!(normalize_program(a), normalize_program(b));
        assert_eq!(UserLibrary::id_for(a), UserLibrary::id_for(b));
        let id = UserLibrary::id_for(a);
        assert!(id.starts_with(USER_ID_PREFIX));
        assert_eq!(id.len(), USER_ID_PREFIX.len() + 12);
        assert_ne!(id, UserLibrary::id_for("BEGIN { exit(); }"));
        // Indentation is kept: only the ends of lines change.
        assert_eq!(normalize_program("  a\n\tb  \n"), "  a\n\tb\n");
    }

    #[test]
    fn output_guess_matches_the_shipped_library() {
        let lib = crate::Library::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/examples"))
            .unwrap();
        let wrong: Vec<&str> = lib
            .examples()
            .iter()
            .filter(|e| guess_output(&e.program) != e.output)
            .map(|e| e.id.as_str())
            .collect();
        assert!(wrong.len() * 50 <= lib.len(), "guessed wrong: {wrong:?}");
        assert_eq!(
            guess_output("kprobe:do_sys_open { @[comm] = count(); }"),
            OutputKind::Map
        );
        assert_eq!(
            guess_output("kprobe:vfs_read { @ = hist(arg2); }"),
            OutputKind::Histogram
        );
        assert_eq!(
            guess_output("kprobe:x { @n = count(); } interval:s:1 { print(@n); clear(@n); }"),
            OutputKind::Periodic
        );
        // `account(` is not `count(`.
        assert_eq!(
            guess_output("uprobe:/bin/x:account( { printf(\"x\\n\"); }"),
            OutputKind::Lines
        );
    }

    #[test]
    fn records_decode_by_format() {
        let record = RecordV1 {
            format: 1,
            program: "BEGIN { exit(); }\n".into(),
            requests: vec!["b".into(), "a".into()],
            probe_types: vec!["BEGIN".into()],
            output: OutputKind::Lines,
            bpftrace_version: None,
            source: "test".into(),
            approvals: 2,
            first_approved: 1,
            last_approved: 2,
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        let Decoded::V1(back) = decode(&bytes) else {
            panic!("format 1 decodes");
        };
        assert_eq!(back.requests, record.requests);
        // Fields added later within format 1 are ignored.
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["added_later"] = serde_json::json!(true);
        assert!(matches!(
            decode(&serde_json::to_vec(&value).unwrap()),
            Decoded::V1(_)
        ));
        value["format"] = serde_json::json!(7);
        assert!(matches!(
            decode(&serde_json::to_vec(&value).unwrap()),
            Decoded::Newer(7)
        ));
        assert!(matches!(decode(b"\xff\x00"), Decoded::Corrupt(_)));
        assert!(matches!(decode(b"{\"format\":1}"), Decoded::Corrupt(_)));
        let e = to_example("approved-x", &back).unwrap();
        assert_eq!(e.request, "b");
        assert_eq!(e.min_bpftrace, "unknown");
        assert_eq!(
            e.description,
            "Approved on this machine for \"b\"; also asked as \"a\". Source: test."
        );
    }
}
