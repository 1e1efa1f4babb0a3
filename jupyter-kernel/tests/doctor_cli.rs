//! `kgent doctor`: what the machine supports, Kgent's own parts included.

mod common;

use serde_json::Value;

fn doctor(env: &[(&str, &std::path::Path)]) -> Value {
    let out = common::run_kgent(&["doctor", "--json"], "", env);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn line<'a>(v: &'a Value, check: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|l| l["check"] == check)
        .unwrap_or_else(|| panic!("no {check} line: {v:#}"))
}

#[test]
fn the_verifier_is_found_and_proves_a_test_assertion() {
    let Some(verifier) = common::verifier() else {
        return;
    };
    let v = doctor(&[("KGENT_VERIFIER", &verifier)]);
    let l = line(&v, "Verifier");
    assert_eq!(l["ok"], true, "{l:#}");
    assert!(
        l["detail"]
            .as_str()
            .unwrap()
            .contains("proved a test assertion"),
        "{l:#}"
    );
    // The library and model lines are there too.
    assert_eq!(line(&v, "Example library")["ok"], true);
    line(&v, "LLM endpoint");
}

#[test]
fn a_missing_or_broken_verifier_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("kgent-verifier");
    let v = doctor(&[("KGENT_VERIFIER", &absent)]);
    let l = line(&v, "Verifier");
    assert_eq!(l["ok"], false, "{l:#}");
    assert!(l["fix"].as_str().unwrap().contains("cargo build"), "{l:#}");

    // Something that runs but is not a verifier.
    let v = doctor(&[("KGENT_VERIFIER", std::path::Path::new("/bin/true"))]);
    let l = line(&v, "Verifier");
    assert_eq!(l["ok"], false, "{l:#}");
    assert!(
        l["detail"].as_str().unwrap().contains("does not work"),
        "{l:#}"
    );
}
