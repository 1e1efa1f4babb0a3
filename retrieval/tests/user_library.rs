//! The user library: approved programs kept in LMDB, merged into the shipped
//! library, and retrieved for later requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::CommitOrAbort;
use kgent_retrieval::{
    Approved, Embedder, Example, HashedNgramEmbedder, HybridConfig, Library, OutputKind, Recipe,
    Retriever, UserLibrary, VectorStore, USER_TAG,
};

const DIR_VAR: &str = "KGENT_USER_LIBRARY_DIR";
const CHILD_VAR: &str = "KGENT_USER_LIBRARY_CHILD";

fn base() -> Library {
    Library::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/examples")).unwrap()
}

/// A distinct, valid program per `n`.
fn program(n: usize) -> String {
    format!("kprobe:vfs_read /pid == {n}/ {{ @[comm] = count(); }}\n")
}

fn approve(request: &str, program: &str) -> Approved {
    Approved::new(request, program, ["kprobe"], "synthesised by test-model")
}

const REDIS_REQUEST: &str = "Which programs open connections to Redis through hiredis?";
const REDIS_PROGRAM: &str = r#"
uprobe:/usr/lib/x86_64-linux-gnu/libhiredis.so:redisConnect
{
    @connects[comm, pid] = count();
}
"#;

fn approve_redis() -> Approved {
    Approved::new(
        REDIS_REQUEST,
        REDIS_PROGRAM,
        ["uprobe"],
        "synthesised by test-model",
    )
}

#[test]
fn add_list_remove_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let user = UserLibrary::open(dir.path()).unwrap();
        assert!(user.is_empty().unwrap());
        let a = user
            .add(Approved {
                output: Some(OutputKind::Lines),
                bpftrace_version: Some("0.20.2".into()),
                ..approve("Reads of process 1", &program(1))
            })
            .unwrap();
        assert_eq!(a.id, UserLibrary::id_for(&program(1)));
        assert_eq!(a.request, "Reads of process 1");
        assert_eq!(a.program, program(1));
        assert_eq!(a.tags, [USER_TAG]);
        assert_eq!(a.probe_types, ["kprobe"]);
        assert_eq!(a.min_bpftrace, "0.20.2");
        assert_eq!(a.output, OutputKind::Lines);
        assert!(a.parameters.is_empty());
        assert!(
            a.description.contains("synthesised by test-model"),
            "{}",
            a.description
        );
        assert!(a.validate().is_ok());
        let b = user
            .add(approve("Reads of process 2", &program(2)))
            .unwrap();
        // Guessed from `count()`, and no version given.
        assert_eq!(
            (b.output, b.min_bpftrace.as_str()),
            (OutputKind::Map, "unknown")
        );
        assert_eq!(user.len().unwrap(), 2);
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(user.examples().unwrap(), expected);
        (a, b)
    };
    // Every handle dropped: the environment is closed and read from disk.
    let user = UserLibrary::open(dir.path()).unwrap();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(user.examples().unwrap(), expected);
    assert_eq!(user.get(&a.id).unwrap().as_ref(), Some(&a));
    assert!(user.remove(&a.id).unwrap());
    assert!(!user.remove(&a.id).unwrap());
    drop(user);
    let user = UserLibrary::open(dir.path()).unwrap();
    assert_eq!(user.len().unwrap(), 1);
    assert_eq!(user.get(&a.id).unwrap(), None);
    assert_eq!(user.examples().unwrap(), [b]);
    // Same process, same directory: shared, not heed's EnvAlreadyOpened.
    let again = UserLibrary::open(dir.path()).unwrap();
    assert_eq!(again.dir(), user.dir());
}

#[test]
fn approving_the_same_program_again_updates_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserLibrary::open(dir.path()).unwrap();
    let p = program(7);
    let first = user.add(approve("Count reads per process", &p)).unwrap();
    // The same program with CRLFs, trailing blanks and blank edge lines.
    let messy = format!("\r\n{}   \r\n\r\n", p.trim_end());
    let second = user
        .add(approve("  how many reads does\neach process do ", &messy))
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(user.len().unwrap(), 1);
    // The latest request is the example's; the earlier one stays findable.
    assert_eq!(second.request, "how many reads does each process do");
    assert!(
        second.description.contains("\"Count reads per process\""),
        "{}",
        second.description
    );
    assert_eq!(second.program, p);

    // Approving it again for the same request changes nothing that is
    // searched, so the merged library keeps its version (no re-index).
    let version = base().with_user(&user).unwrap().0.version().to_string();
    let third = user
        .add(approve("how many reads does each process do", &p))
        .unwrap();
    assert_eq!(third, second);
    assert_eq!(base().with_user(&user).unwrap().0.version(), version);

    // At most 8 requests are kept, the most recent first.
    for i in 0..12 {
        user.add(approve(&format!("phrasing number {i}"), &p))
            .unwrap();
    }
    let e = user.get(&first.id).unwrap().unwrap();
    assert_eq!(e.request, "phrasing number 11");
    // The description quotes the 8 kept: 11 down to 4.
    assert_eq!(e.description.matches("\"phrasing number").count(), 8);
    assert!(e.description.contains("\"phrasing number 4\""));
    assert!(!e.description.contains("\"phrasing number 3\""));
}

#[test]
fn an_invalid_approval_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserLibrary::open(dir.path()).unwrap();
    let no_probes = Approved::new("Reads", program(1), Vec::<String>::new(), "x");
    let err = user.add(no_probes).unwrap_err().to_string();
    assert!(err.contains("probe_types"), "{err}");
    let err = user
        .add(approve(" \n ", &program(1)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("request"), "{err}");
    let err = user
        .add(approve("Reads", "\n  \n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("program"), "{err}");
    assert_eq!(user.len().unwrap(), 0);
}

#[test]
fn threads_adding_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 6;
    const EACH: usize = 10;
    let shared = program(9999);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (dir, shared) = (dir.path(), shared.as_str());
            s.spawn(move || {
                let user = UserLibrary::open(dir).unwrap();
                for i in 0..EACH {
                    user.add(approve(
                        &format!("thread {t} item {i}"),
                        &program(t * 100 + i),
                    ))
                    .unwrap();
                    if i == EACH / 2 {
                        user.add(approve(&format!("shared by thread {t}"), shared))
                            .unwrap();
                    }
                }
            });
        }
    });
    let user = UserLibrary::open(dir.path()).unwrap();
    assert_eq!(user.len().unwrap(), THREADS * EACH + 1);
    let loaded = user.load().unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.examples.len(), THREADS * EACH + 1);
    // Every thread's request for the shared program was merged, none lost.
    let e = user.get(&UserLibrary::id_for(&shared)).unwrap().unwrap();
    for t in 0..THREADS {
        let phrase = format!("shared by thread {t}");
        assert!(
            e.request == phrase || e.description.contains(&phrase),
            "{phrase} lost: {e:?}"
        );
    }
}

/// Run by `processes_adding_at_once_lose_nothing` in child processes.
#[test]
#[ignore = "helper: runs only as a child process of another test"]
fn child_adds_programs() {
    let (Some(dir), Some(child)) = (std::env::var_os(DIR_VAR), std::env::var(CHILD_VAR).ok())
    else {
        return;
    };
    let child: usize = child.parse().unwrap();
    let user = UserLibrary::open(Path::new(&dir)).unwrap();
    for i in 0..15 {
        user.add(approve(
            &format!("child {child} item {i}"),
            &program(child * 1000 + i),
        ))
        .unwrap();
        user.add(approve(
            &format!("shared by child {child}"),
            &program(424242),
        ))
        .unwrap();
    }
    println!("KGENT_CHILD done");
}

#[test]
fn processes_adding_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|child| {
            Command::new(&exe)
                .args(["--ignored", "--exact", "child_adds_programs", "--nocapture"])
                .env(DIR_VAR, dir.path())
                .env(CHILD_VAR, child.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("KGENT_CHILD done"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let user = UserLibrary::open(dir.path()).unwrap();
    assert_eq!(user.len().unwrap(), 3 * 15 + 1);
    let e = user
        .get(&UserLibrary::id_for(&program(424242)))
        .unwrap()
        .unwrap();
    let text = format!("{} {}", e.request, e.description);
    for child in 0..3 {
        assert!(text.contains(&format!("shared by child {child}")), "{text}");
    }
}

#[test]
fn a_paraphrase_retrieves_the_approved_program() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserLibrary::open(dir.path().join("user")).unwrap();
    let approved = user.add(approve_redis()).unwrap();
    let (library, warnings) = base().with_user(&user).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(library.len(), base().len() + 1);

    let paraphrase = "who is connecting to redis using the hiredis client library";
    let top = |r: &Retriever| r.search(paraphrase, 3)[0].example_id.clone();
    assert_eq!(top(&Retriever::lexical(library.clone())), approved.id);

    let store = VectorStore::open(dir.path().join("index")).unwrap();
    let hashed = Retriever::hybrid(
        library.clone(),
        Arc::new(HashedNgramEmbedder::default()),
        &store,
    )
    .unwrap();
    let hit = &hashed.search(paraphrase, 3)[0];
    assert_eq!(hit.example_id, approved.id);
    assert!(hit.vector_rank.is_some(), "{hit:?}");
}

/// The bundled model over the shipped `user` area (uprobes on libraries,
/// the nearest neighbours of a hiredis uprobe) plus the approved program:
/// a subset, because a debug build embeds only a few texts per second.
#[cfg(feature = "bundled-embedder")]
#[test]
fn the_bundled_embedder_ranks_the_approved_program_first() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserLibrary::open(dir.path().join("user")).unwrap();
    let approved = user.add(approve_redis()).unwrap();
    let area: Vec<Example> = base()
        .examples()
        .iter()
        .filter(|e| e.id.starts_with("user-"))
        .cloned()
        .collect();
    assert!(area.len() >= 10);
    let (library, _) = Library::from_examples(area)
        .unwrap()
        .with_user(&user)
        .unwrap();
    let store = VectorStore::open(dir.path().join("index")).unwrap();
    let bundled = kgent_retrieval::default_embedder().unwrap().unwrap();
    let r = Retriever::hybrid(library, bundled, &store).unwrap();
    let paraphrase = "who is connecting to redis using the hiredis client library";
    let hit = &r.search(paraphrase, 3)[0];
    assert_eq!(hit.example_id, approved.id);
    assert_eq!(hit.vector_rank, Some(1), "{hit:?}");
}

/// Counts the texts it embeds, to see the store's embedding cache at work.
struct Counting {
    inner: HashedNgramEmbedder,
    texts: AtomicUsize,
}

impl Embedder for Counting {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed(&self, texts: &[&str]) -> kgent_retrieval::Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts)
    }
}

#[test]
fn an_approval_embeds_only_the_new_example() {
    let dir = tempfile::tempdir().unwrap();
    let store = VectorStore::open(dir.path().join("index")).unwrap();
    let user = UserLibrary::open(dir.path().join("user")).unwrap();
    let counting = Arc::new(Counting {
        inner: HashedNgramEmbedder::default(),
        texts: AtomicUsize::new(0),
    });
    let embedder: Arc<dyn Embedder> = counting.clone();
    let base = base();
    // The default recipe embeds request and description: two texts each.
    let docs = 2 * base.len();

    let r = Retriever::hybrid(base.with_user(&user).unwrap().0, embedder.clone(), &store).unwrap();
    let report = r.build_report().unwrap();
    assert!(report.built);
    assert_eq!((report.embedded, report.cached), (docs, 0));
    assert_eq!(counting.texts.load(Ordering::SeqCst), docs);

    user.add(approve_redis()).unwrap();
    let (merged, _) = base.with_user(&user).unwrap();
    assert_ne!(merged.version(), base.version());
    let r = Retriever::hybrid(merged.clone(), embedder.clone(), &store).unwrap();
    let report = r.build_report().unwrap();
    assert!(report.built, "a new library version is a new index");
    assert_eq!((report.embedded, report.cached), (2, docs));
    assert_eq!(counting.texts.load(Ordering::SeqCst), docs + 2);

    // Request vectors are cached by text, whatever the recipe: an index of
    // requests alone embeds nothing new at all.
    let requests_only = HybridConfig {
        recipe: Recipe::Request,
        ..HybridConfig::default()
    };
    let r =
        Retriever::hybrid_with(merged.clone(), embedder.clone(), &store, requests_only).unwrap();
    assert_eq!(r.build_report().unwrap().embedded, 0);

    // One more approval: its two texts, not the library again.
    user.add(approve("Reads of process 3", &program(3)))
        .unwrap();
    let (merged2, _) = base.with_user(&user).unwrap();
    let r = Retriever::hybrid(merged2.clone(), embedder.clone(), &store).unwrap();
    assert_eq!(r.build_report().unwrap().embedded, 2);
    let r = Retriever::hybrid_with(merged2, embedder.clone(), &store, requests_only).unwrap();
    assert_eq!(
        r.build_report().unwrap().embedded,
        0,
        "cached by the line above"
    );
    assert_eq!(counting.texts.load(Ordering::SeqCst), docs + 4);

    // The same library again: the index on disk is opened, nothing embedded.
    let r = Retriever::hybrid(merged, embedder, &store).unwrap();
    assert!(!r.build_report().unwrap().built);
    assert_eq!(counting.texts.load(Ordering::SeqCst), docs + 4);
}

/// Writes raw records into a closed user library, as a damaged disk or a
/// newer kgent might have left them.
fn write_raw(dir: &Path, records: &[(&[u8], &[u8])]) {
    // SAFETY: no other handle to this environment is open in this process.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .max_dbs(1)
            .map_size(256 << 20)
            .open(dir)
    }
    .unwrap();
    let wtxn = env.write_txn().unwrap();
    env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
        let db: heed::Database<Bytes, Bytes> = dbo.create_database(wtxn, Some("approved"))?;
        for (k, v) in records {
            db.put(wtxn, k, v)?;
        }
        Ok(CommitOrAbort::<_, ()>::Commit(db))
    })
    .unwrap()
    .unwrap_commit();
}

#[test]
fn damaged_records_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let good = UserLibrary::open(dir.path())
        .unwrap()
        .add(approve("Reads of process 1", &program(1)))
        .unwrap();
    let truncated_id = UserLibrary::id_for(&program(2));
    let future_id = UserLibrary::id_for(&program(3));
    let invalid = br#"{"format":1,"program":"BEGIN { exit(); }\n","requests":["x"],
        "probe_types":[],"output":"lines","bpftrace_version":null,"source":"s",
        "approvals":1,"first_approved":0,"last_approved":0}"#;
    write_raw(
        dir.path(),
        &[
            (b"approved-garbage", b"\x00\xffnot json"),
            (truncated_id.as_bytes(), b"{\"format\":1,\"prog"),
            (future_id.as_bytes(), br#"{"format":99,"shape":"unknown"}"#),
            (b"approved-invalid", invalid),
            (b"\xff\xfe", b"{}"),
        ],
    );

    let user = UserLibrary::open(dir.path()).unwrap();
    assert_eq!(user.len().unwrap(), 6);
    let loaded = user.load().unwrap();
    assert_eq!(loaded.examples, std::slice::from_ref(&good));
    assert_eq!(loaded.warnings.len(), 5, "{:#?}", loaded.warnings);
    let all = loaded.warnings.join("\n");
    for expected in [
        "`approved-garbage` skipped: not a record",
        "format 99 by a newer kgent",
        "`approved-invalid` skipped: `probe_types` is empty",
        "the key is not UTF-8",
    ] {
        assert!(all.contains(expected), "no {expected:?} in\n{all}");
    }
    assert_eq!(user.examples().unwrap(), std::slice::from_ref(&good));
    assert_eq!(user.get(&truncated_id).unwrap(), None);

    // The merge still works, and passes the warnings on.
    let (library, warnings) = base().with_user(&user).unwrap();
    assert_eq!(library.len(), base().len() + 1);
    assert_eq!(warnings.len(), 5);

    // Approving a program whose record is damaged repairs it...
    user.add(approve("Reads of process 2", &program(2)))
        .unwrap();
    assert!(user.get(&truncated_id).unwrap().is_some());
    // ...but a newer kgent's record is not overwritten.
    let err = user
        .add(approve("Reads of process 3", &program(3)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("newer kgent"), "{err}");
    let loaded = user.load().unwrap();
    assert_eq!(loaded.examples.len(), 2);
    assert_eq!(loaded.warnings.len(), 4);
}

#[test]
fn a_user_example_replaces_a_shipped_one_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserLibrary::open(dir.path()).unwrap();
    let approved = user.add(approve_redis()).unwrap();
    // The shipped library already holds this program under the same id,
    // as after promoting an approved program into specs/examples.
    let promoted = Example {
        request: "Count hiredis connects".into(),
        description: "Curated copy.".into(),
        tags: vec!["user".into(), "redis".into()],
        min_bpftrace: "0.17".into(),
        ..approved.clone()
    };
    let shipped = base().with_examples(vec![promoted]).unwrap();
    let (merged, warnings) = shipped.with_user(&user).unwrap();
    assert_eq!(merged.len(), shipped.len());
    assert_eq!(merged.get(&approved.id), Some(&approved));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("replaces the shipped example"),
        "{warnings:?}"
    );
    assert_ne!(merged.version(), shipped.version());
    // The strict merge still refuses a duplicate id.
    assert!(shipped.with_examples(vec![approved]).is_err());
}
