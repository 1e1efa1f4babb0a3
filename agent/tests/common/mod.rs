//! Shared by the live-kernel tests.

use std::sync::{Arc, OnceLock};

use kgent_agent::facts::CatalogFacts;
use kgent_catalog::{capabilities, Catalog, CatalogPaths};

/// The live facts, built once per test binary, or why they cannot be.
#[allow(dead_code)] // Not every test binary needs them borrowed.
pub fn facts() -> Result<&'static CatalogFacts, String> {
    shared_facts().map(|f| &**f)
}

/// [`facts`], for code that keeps them (the synthesiser takes an `Arc`).
pub fn shared_facts() -> Result<&'static Arc<CatalogFacts>, String> {
    static FACTS: OnceLock<Result<Arc<CatalogFacts>, String>> = OnceLock::new();
    FACTS
        .get_or_init(|| {
            let paths = CatalogPaths::detect();
            if !paths.tracefs.join("available_events").exists() {
                return Err(format!(
                    "tracefs is not readable at {} (mount it, run as root)",
                    paths.tracefs.display()
                ));
            }
            let catalog = Catalog::load(&paths).map_err(|e| e.to_string())?;
            if catalog.btf_types().is_none() {
                return Err("no kernel BTF (/sys/kernel/btf/vmlinux)".to_string());
            }
            let caps = capabilities(false);
            Ok(Arc::new(CatalogFacts::new(
                Arc::new(catalog),
                Some(Arc::new(caps)),
            )))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The live facts, or return from the test saying why it is skipped.
#[allow(unused_macros)] // Not every test binary uses it.
macro_rules! live_facts {
    ($test:expr) => {
        match common::facts() {
            Ok(f) => f,
            Err(why) => {
                eprintln!("{}: skipped: {why}", $test);
                return;
            }
        }
    };
}
