//! Several processes (kernels) opening the same index directory at once:
//! exactly one builds the index, the others load it, and it stays readable.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use kgent_retrieval::{HashedNgramEmbedder, Library, Retriever, VectorStore};

const DIR_VAR: &str = "KGENT_RETRIEVAL_CONCURRENCY_DIR";

fn library() -> Library {
    Library::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/examples")).unwrap()
}

fn open_retriever(dir: &std::path::Path) -> Retriever {
    let store = VectorStore::open(dir).unwrap();
    Retriever::hybrid(library(), Arc::new(HashedNgramEmbedder::default()), &store).unwrap()
}

/// Run by `several_processes_build_the_index_once` in child processes.
#[test]
#[ignore = "helper: runs only as a child process of another test"]
fn child_opens_the_index() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let r = open_retriever(std::path::Path::new(&dir));
    let built = r.build_report().unwrap().built;
    let top = r.search("who opens files under /etc", 1);
    println!("KGENT_CHILD built={built} top={}", top[0].example_id);
}

#[test]
fn several_processes_build_the_index_once() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "child_opens_the_index",
                    "--nocapture",
                ])
                .env(DIR_VAR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut built = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("KGENT_CHILD"))
            .unwrap_or_else(|| panic!("child printed no result: {stdout}"));
        assert!(line.ends_with("top=files-opens-under-etc"), "{line}");
        if line.contains("built=true") {
            built += 1;
        }
    }
    assert_eq!(built, 1, "exactly one process builds the index");
    let store = VectorStore::open(dir.path()).unwrap();
    assert_eq!(store.index_keys().unwrap().len(), 1);
    assert!(!open_retriever(dir.path()).build_report().unwrap().built);
}
