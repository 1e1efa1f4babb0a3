//! What the kernel knows about the machine: the probe catalog and the probe types that
//! attach here, loaded in the background so the first `kernel_info_reply` is not delayed.

use std::sync::{Arc, OnceLock};

use kgent_catalog::{Capabilities, Catalog, CatalogPaths, TracefsState};
use tokio::sync::OnceCell;

#[derive(Clone, Default)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    catalog: OnceCell<Result<Arc<Catalog>, String>>,
    caps: OnceLock<Arc<Capabilities>>,
    caps_loading: std::sync::atomic::AtomicBool,
}

impl Knowledge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts loading everything in the background: mounts tracefs when root and it is
    /// missing, then loads the catalog and the (cached) probe-type capabilities.
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(ensure_tracefs).await;
            // The kernel lives long: read every source now, so completion and %probes
            // never wait for kallsyms or BTF. (`kgent check` stays lazy.)
            if let Ok(catalog) = this.catalog().await {
                let _ = tokio::task::spawn_blocking(move || catalog.preload()).await;
            }
            this.start_caps();
        });
    }

    fn start_caps(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.caps_loading.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let caps = kgent_catalog::capabilities(false);
            let _ = inner.caps.set(Arc::new(caps));
        });
    }

    /// The probe catalog, loading it on first use.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, String> {
        self.inner
            .catalog
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| {
                    Catalog::load(&CatalogPaths::detect())
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("catalog loading failed: {e}")))
            })
            .await
            .clone()
    }

    /// Probe-type capabilities, detecting them now if needed (a few seconds the first
    /// time on a machine; cached on disk after that).
    pub async fn caps(&self) -> Arc<Capabilities> {
        if let Some(caps) = self.inner.caps.get() {
            return caps.clone();
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .caps
                .get_or_init(|| Arc::new(kgent_catalog::capabilities(false)))
                .clone()
        })
        .await
        .unwrap_or_else(|_| Arc::new(kgent_catalog::capabilities(false)))
    }

    /// Probe-type capabilities if detection has finished (it takes a few seconds the first
    /// time on a machine, then comes from a cache).
    pub fn caps_if_ready(&self) -> Option<Arc<Capabilities>> {
        let caps = self.inner.caps.get().cloned();
        if caps.is_none() {
            self.start_caps();
        }
        caps
    }
}

/// Mounts tracefs when it is missing and we may; failures are reported by the checks
/// that need it.
pub fn ensure_tracefs() -> TracefsState {
    let state = kgent_catalog::tracefs_state();
    if matches!(state, TracefsState::NotMounted) && unsafe { libc::geteuid() } == 0 {
        if let Ok(path) = kgent_catalog::mount_tracefs() {
            return TracefsState::Mounted(path);
        }
    }
    state
}
