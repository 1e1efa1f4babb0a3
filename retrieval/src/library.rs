//! The example library: request/program pairs read from `specs/examples/*.toml`
//! (format in `specs/examples/README.md`), or built in code, e.g. merged with
//! the person's approved programs ([`Library::with_user`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, RetrievalError};
use crate::user::UserLibrary;

/// Where examples built in code (not read from a file) say they came from.
const MEMORY_ORIGIN: &str = "<memory>";

/// One request/program pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The file stem (`files-opens-under-etc`), unique within a library.
    pub id: String,
    /// How a person would ask for this program.
    pub request: String,
    /// What the program does exactly: events, filters, units, blind spots.
    pub description: String,
    /// Free-form search words; the first is usually the area.
    pub tags: Vec<String>,
    /// Every probe provider the program uses (`tracepoint`, `kprobe`, `BEGIN`, ...).
    pub probe_types: Vec<String>,
    /// Lowest bpftrace version the program is known to work with.
    pub min_bpftrace: String,
    /// What the person sees when it runs.
    pub output: OutputKind,
    /// Literals a request may change (process name, threshold, interval, ...).
    pub parameters: Vec<Parameter>,
    /// The bpftrace program.
    pub program: String,
}

/// What a program prints, from the example's `output` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// A line per event.
    Lines,
    /// Maps printed at exit.
    Map,
    /// `hist`/`lhist` printed at exit.
    Histogram,
    /// Reports printed by an `interval` probe.
    Periodic,
}

impl OutputKind {
    /// The word used in the TOML files.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Lines => "lines",
            OutputKind::Map => "map",
            OutputKind::Histogram => "histogram",
            OutputKind::Periodic => "periodic",
        }
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A literal in the program that the offline mode may substitute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Identifier, `[a-z][a-z0-9_]*`.
    pub name: String,
    /// What sort of value it is.
    pub kind: ParamKind,
    /// The value as written in the program.
    pub default: ParamValue,
    /// For an integer: the byte length of this string parameter.
    #[serde(default)]
    pub length_of: Option<String>,
    /// Added to that length (1 when the terminating NUL is compared).
    #[serde(default)]
    pub length_adjust: Option<i64>,
}

/// The kinds of parameter the library uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Any string literal.
    String,
    /// A process name, at most 15 bytes (the kernel's `comm`).
    Comm,
    /// A process id.
    Pid,
    /// Any integer.
    Integer,
    /// Milliseconds, as written in a comparison.
    DurationMs,
    /// Seconds of an `interval:s:N` probe.
    DurationS,
}

impl ParamKind {
    /// The word used in the TOML files.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Comm => "comm",
            ParamKind::Pid => "pid",
            ParamKind::Integer => "integer",
            ParamKind::DurationMs => "duration_ms",
            ParamKind::DurationS => "duration_s",
        }
    }

    /// Whether the default is a string (else an integer).
    pub fn is_string(self) -> bool {
        matches!(self, ParamKind::String | ParamKind::Comm)
    }
}

/// A parameter's default value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// For `integer`, `pid` and the durations.
    Int(i64),
    /// For `string` and `comm`.
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The keys of one example file; `deny_unknown_fields` turns a misspelt key
/// (or a key written after a `[[parameters]]` header) into an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleFile {
    request: String,
    description: String,
    tags: Vec<String>,
    probe_types: Vec<String>,
    min_bpftrace: String,
    output: OutputKind,
    program: String,
    #[serde(default)]
    parameters: Vec<Parameter>,
}

impl Example {
    /// Parses the text of one example file. `id` is what the file stem would
    /// be; `origin` names the source in error messages.
    pub fn from_toml(id: &str, text: &str, origin: &Path) -> Result<Example> {
        let file: ExampleFile = toml::from_str(text).map_err(|e| RetrievalError::Parse {
            path: origin.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        let example = Example {
            id: id.to_string(),
            request: file.request,
            description: file.description,
            tags: file.tags,
            probe_types: file.probe_types,
            min_bpftrace: file.min_bpftrace,
            output: file.output,
            parameters: file.parameters,
            program: file.program,
        };
        example
            .validate()
            .map_err(|reason| RetrievalError::Invalid {
                origin: origin.display().to_string(),
                id: id.to_string(),
                reason,
            })?;
        Ok(example)
    }

    /// Checks the rules that the loader can check without bpftrace; the
    /// full check (probe types against the program, literals occurring once,
    /// a real load) is `specs/examples/check_examples.sh`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.id.is_empty() || self.id.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err("id must be non-empty, without spaces or '/'".into());
        }
        for (key, value) in [
            ("request", &self.request),
            ("description", &self.description),
            ("program", &self.program),
            ("min_bpftrace", &self.min_bpftrace),
        ] {
            if value.trim().is_empty() {
                return Err(format!("`{key}` is empty"));
            }
        }
        if self.probe_types.is_empty() {
            return Err("`probe_types` is empty".into());
        }
        let mut names = HashSet::new();
        for p in &self.parameters {
            let valid_name = p.name.starts_with(|c: char| c.is_ascii_lowercase())
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                return Err(format!(
                    "parameter name `{}` is not [a-z][a-z0-9_]*",
                    p.name
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(format!("parameter `{}` is declared twice", p.name));
            }
            match (&p.default, p.kind.is_string()) {
                (ParamValue::Str(s), true) => {
                    if p.kind == ParamKind::Comm && s.len() > 15 {
                        return Err(format!(
                            "parameter `{}`: a comm is at most 15 bytes, {s:?} has {}",
                            p.name,
                            s.len()
                        ));
                    }
                }
                (ParamValue::Int(_), false) => {}
                (_, true) => {
                    return Err(format!(
                        "parameter `{}` of kind {} needs a string default",
                        p.name,
                        p.kind.as_str()
                    ))
                }
                (_, false) => {
                    return Err(format!(
                        "parameter `{}` of kind {} needs an integer default",
                        p.name,
                        p.kind.as_str()
                    ))
                }
            }
            if p.length_adjust.is_some() && p.length_of.is_none() {
                return Err(format!(
                    "parameter `{}` has length_adjust without length_of",
                    p.name
                ));
            }
        }
        for p in &self.parameters {
            let Some(target) = &p.length_of else { continue };
            if p.kind.is_string() {
                return Err(format!(
                    "parameter `{}`: only an integer can be a length_of",
                    p.name
                ));
            }
            match self.parameters.iter().find(|q| &q.name == target) {
                Some(q) if q.kind.is_string() => {}
                Some(_) => {
                    return Err(format!(
                        "parameter `{}`: length_of `{target}` is not a string parameter",
                        p.name
                    ))
                }
                None => {
                    return Err(format!(
                        "parameter `{}`: length_of names no parameter `{target}`",
                        p.name
                    ))
                }
            }
        }
        Ok(())
    }

    /// Feeds every field into `hasher`, each length-prefixed so that moving
    /// text from one field to the next changes the hash.
    fn hash_into(&self, hasher: &mut Sha256) {
        fn put(h: &mut Sha256, s: &str) {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        put(hasher, &self.id);
        put(hasher, &self.request);
        put(hasher, &self.description);
        hasher.update((self.tags.len() as u64).to_le_bytes());
        for t in &self.tags {
            put(hasher, t);
        }
        hasher.update((self.probe_types.len() as u64).to_le_bytes());
        for t in &self.probe_types {
            put(hasher, t);
        }
        put(hasher, &self.min_bpftrace);
        put(hasher, self.output.as_str());
        hasher.update((self.parameters.len() as u64).to_le_bytes());
        for p in &self.parameters {
            put(hasher, &p.name);
            put(hasher, p.kind.as_str());
            put(hasher, &p.default.to_string());
            put(hasher, p.length_of.as_deref().unwrap_or(""));
            put(hasher, &p.length_adjust.unwrap_or(0).to_string());
        }
        put(hasher, &self.program);
    }
}

/// A set of examples with unique ids, in id order.
#[derive(Debug, Clone)]
pub struct Library {
    examples: Vec<Example>,
    by_id: HashMap<String, usize>,
    version: String,
}

impl Library {
    /// Reads every `*.toml` file directly in `dir` (other files, such as the
    /// README and the check script, are ignored). The id of each example is
    /// its file stem.
    pub fn load(dir: impl AsRef<Path>) -> Result<Library> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| RetrievalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut examples = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            examples.push(Example::from_toml(&id, &text, &path)?);
        }
        Library::build(examples, &dir.display().to_string())
    }

    /// A library of examples built in code: user-approved programs, or a
    /// loaded library with them added (`base.examples().to_vec()` plus more).
    pub fn from_examples(examples: Vec<Example>) -> Result<Library> {
        for e in &examples {
            e.validate().map_err(|reason| RetrievalError::Invalid {
                origin: MEMORY_ORIGIN.into(),
                id: e.id.clone(),
                reason,
            })?;
        }
        Library::build(examples, MEMORY_ORIGIN)
    }

    /// This library with `more` examples added; an id already present is an
    /// error rather than a silent replacement.
    pub fn with_examples(&self, more: Vec<Example>) -> Result<Library> {
        let mut all = self.examples.clone();
        all.extend(more);
        Library::from_examples(all)
    }

    /// This library with `more` added, where an example of `more` replaces
    /// the one here with the same id; also returns the replaced ids. The
    /// version changes with any added or replaced example, so indexes are
    /// rebuilt, and only the new texts are embedded (the store caches
    /// vectors by text).
    pub fn with_examples_replacing(&self, more: Vec<Example>) -> Result<(Library, Vec<String>)> {
        let incoming: HashSet<&str> = more.iter().map(|e| e.id.as_str()).collect();
        let mut replaced = Vec::new();
        let mut all = Vec::with_capacity(self.examples.len() + more.len());
        for e in &self.examples {
            if incoming.contains(e.id.as_str()) {
                replaced.push(e.id.clone());
            } else {
                all.push(e.clone());
            }
        }
        all.extend(more);
        Ok((Library::from_examples(all)?, replaced))
    }

    /// This library plus the person's approved programs, and one warning per
    /// user record skipped or shipped example replaced.
    ///
    /// On an id collision the user's example wins: user ids are
    /// `approved-<hash of the program>`, so a shipped example with such an id
    /// can only be an approved program promoted into `specs/examples`, the
    /// same program, and the user's copy carries the person's own requests.
    pub fn with_user(&self, user: &UserLibrary) -> Result<(Library, Vec<String>)> {
        let loaded = user.load()?;
        let (library, replaced) = self.with_examples_replacing(loaded.examples)?;
        let mut warnings = loaded.warnings;
        warnings.extend(replaced.into_iter().map(|id| {
            format!("user library: `{id}` replaces the shipped example with the same id")
        }));
        Ok((library, warnings))
    }

    fn build(mut examples: Vec<Example>, origin: &str) -> Result<Library> {
        examples.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_id = HashMap::with_capacity(examples.len());
        for (i, e) in examples.iter().enumerate() {
            if by_id.insert(e.id.clone(), i).is_some() {
                return Err(RetrievalError::Invalid {
                    origin: origin.to_string(),
                    id: e.id.clone(),
                    reason: "two examples have this id".into(),
                });
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(b"kgent-library-v1");
        for e in &examples {
            e.hash_into(&mut hasher);
        }
        let digest = hasher.finalize();
        // 128 bits are plenty to tell library versions apart.
        let version = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Library {
            examples,
            by_id,
            version,
        })
    }

    /// A content hash of every example (all fields, in id order): equal
    /// libraries have equal versions, whatever their files' order or origin.
    /// Indexes built from the library are keyed by it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The examples, in id order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// The example with this id.
    pub fn get(&self, id: &str) -> Option<&Example> {
        self.by_id.get(id).map(|&i| &self.examples[i])
    }

    /// The position of the example with this id in [`Library::examples`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// How many examples there are.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
request = "Show which processes open files under /etc"
description = "Traces openat()."
tags = ["files", "open"]
probe_types = ["tracepoint"]
min_bpftrace = "0.17"
output = "lines"
program = '''
tracepoint:syscalls:sys_enter_openat
/strncmp(str(args->filename), "/etc/", 5) == 0/
{ printf("%s\n", str(args->filename)); }
'''

[[parameters]]
name = "path_prefix"
kind = "string"
default = "/etc/"

[[parameters]]
name = "path_prefix_len"
kind = "integer"
default = 5
length_of = "path_prefix"
"#;

    fn parse(text: &str) -> Result<Example> {
        Example::from_toml("files-x", text, Path::new("files-x.toml"))
    }

    #[test]
    fn parses_all_keys_and_parameters() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.id, "files-x");
        assert_eq!(e.output, OutputKind::Lines);
        assert_eq!(e.tags, ["files", "open"]);
        assert_eq!(e.parameters.len(), 2);
        assert_eq!(e.parameters[0].default, ParamValue::Str("/etc/".into()));
        assert_eq!(e.parameters[1].kind, ParamKind::Integer);
        assert_eq!(e.parameters[1].length_of.as_deref(), Some("path_prefix"));
        assert!(e.program.contains("sys_enter_openat"));
    }

    #[test]
    fn malformed_toml_names_the_file_and_line() {
        let err = parse("request = \"unterminated\n").unwrap_err().to_string();
        assert!(err.starts_with("files-x.toml:"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_and_unknown_keys_are_reported() {
        let err = parse(&GOOD.replace("min_bpftrace = \"0.17\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_bpftrace"), "{err}");
        let err = parse(&GOOD.replace("output = \"lines\"", "output = \"table\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("table"), "{err}");
        // A top-level key written after a [[parameters]] header belongs to
        // the parameter: the README's TOML trap.
        let err = parse(&format!("{GOOD}extra = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn parameter_rules() {
        let wrong_type = GOOD.replace("default = 5", "default = \"5\"");
        let err = parse(&wrong_type).unwrap_err().to_string();
        assert!(err.contains("needs an integer default"), "{err}");
        let dangling = GOOD.replace("length_of = \"path_prefix\"", "length_of = \"nope\"");
        let err = parse(&dangling).unwrap_err().to_string();
        assert!(err.contains("names no parameter `nope`"), "{err}");
        let long_comm = GOOD.replace(
            "kind = \"string\"\ndefault = \"/etc/\"",
            "kind = \"comm\"\ndefault = \"a-very-long-process-name\"",
        );
        let err = parse(&long_comm).unwrap_err().to_string();
        assert!(err.contains("at most 15 bytes"), "{err}");
    }

    #[test]
    fn version_depends_on_content_only() {
        let a = parse(GOOD).unwrap();
        let mut b = a.clone();
        b.id = "files-y".into();
        let lib1 = Library::from_examples(vec![a.clone(), b.clone()]).unwrap();
        let lib2 = Library::from_examples(vec![b.clone(), a.clone()]).unwrap();
        assert_eq!(lib1.version(), lib2.version());
        assert_eq!(lib1.version().len(), 32);
        let mut c = a.clone();
        c.description.push('!');
        let lib3 = Library::from_examples(vec![c, b]).unwrap();
        assert_ne!(lib1.version(), lib3.version());
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let a = parse(GOOD).unwrap();
        let lib = Library::from_examples(vec![a.clone()]).unwrap();
        let err = lib.with_examples(vec![a]).unwrap_err().to_string();
        assert!(err.contains("two examples have this id"), "{err}");
    }

    #[test]
    fn replacing_merge_swaps_same_ids_and_changes_the_version() {
        let a = parse(GOOD).unwrap();
        let mut b = a.clone();
        b.id = "files-y".into();
        let base = Library::from_examples(vec![a.clone(), b.clone()]).unwrap();
        let mut a2 = a.clone();
        a2.request = "Another way to ask".into();
        let mut c = a.clone();
        c.id = "files-z".into();
        let (merged, replaced) = base.with_examples_replacing(vec![a2, c]).unwrap();
        assert_eq!(replaced, ["files-x"]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.get("files-x").unwrap().request, "Another way to ask");
        assert_ne!(merged.version(), base.version());
        // Nothing added: the same library, the same version.
        let (same, none) = base.with_examples_replacing(Vec::new()).unwrap();
        assert!(none.is_empty());
        assert_eq!(same.version(), base.version());
    }

    #[test]
    fn load_reports_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("files-good.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("README.md"), "not an example").unwrap();
        let lib = Library::load(dir.path()).unwrap();
        assert_eq!(lib.len(), 1);
        assert!(lib.get("files-good").is_some());
        std::fs::write(dir.path().join("files-bad.toml"), "request = [").unwrap();
        let err = Library::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("files-bad.toml"), "{err}");
    }
}
