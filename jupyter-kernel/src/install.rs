//! `kgent install` / `kgent uninstall`: the kernelspec Jupyter uses to start this kernel.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

pub const DEFAULT_KERNEL_NAME: &str = "kgent";

const LOGO_32: &[u8] = include_bytes!("../assets/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../assets/logo-64x64.png");
const LOGO_SVG: &[u8] = include_bytes!("../assets/logo-svg.svg");

/// Where the kernelspec goes.
#[derive(Clone, Debug)]
pub enum Location {
    /// The user's Jupyter data directory.
    User,
    /// `PREFIX/share/jupyter/kernels`, e.g. a virtualenv.
    Prefix(PathBuf),
    /// The system-wide directory (`/usr/local/share/jupyter/kernels`).
    System,
}

impl Location {
    pub fn kernels_dir(&self) -> Result<PathBuf> {
        Ok(match self {
            Location::User => user_data_dir()?.join("kernels"),
            Location::Prefix(p) => p.join("share/jupyter/kernels"),
            Location::System => PathBuf::from("/usr/local/share/jupyter/kernels"),
        })
    }
}

fn user_data_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("JUPYTER_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("jupyter"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; use --prefix DIR")?;
    Ok(PathBuf::from(home).join(".local/share/jupyter"))
}

/// The kernel.json content for a kernel started as `binary kernel --connection-file ...`.
pub fn kernel_json(binary: &Path, display_name: &str) -> serde_json::Value {
    json!({
        "argv": [binary.to_string_lossy(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": display_name,
        "language": "bpftrace",
        // Interrupts arrive as messages, so the kernel stops the running program, not itself.
        "interrupt_mode": "message",
        "env": {},
        "metadata": { "debugger": false }
    })
}

/// Writes the kernelspec and returns its directory.
pub fn install(location: &Location, name: &str, display_name: Option<&str>) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        anyhow::bail!("kernel name `{name}` must be letters, digits, '.', '_' or '-'");
    }
    let binary = std::env::current_exe()
        .context("cannot find this program's own path")?
        .canonicalize()
        .context("cannot resolve this program's own path")?;
    let dir = location.kernels_dir()?.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let display = display_name.map(str::to_string).unwrap_or_else(|| {
        if name == DEFAULT_KERNEL_NAME {
            "Kgent (bpftrace)".to_string()
        } else {
            format!("Kgent ({name})")
        }
    });
    let spec = serde_json::to_string_pretty(&kernel_json(&binary, &display))?;
    write(&dir.join("kernel.json"), spec.as_bytes())?;
    write(&dir.join("logo-32x32.png"), LOGO_32)?;
    write(&dir.join("logo-64x64.png"), LOGO_64)?;
    write(&dir.join("logo-svg.svg"), LOGO_SVG)?;
    Ok(dir)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the kernelspec; returns the directory removed, or None if there was none.
pub fn uninstall(location: &Location, name: &str) -> Result<Option<PathBuf>> {
    let dir = location.kernels_dir()?.join(name);
    if !dir.join("kernel.json").exists() {
        return Ok(None);
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_and_uninstall_under_a_prefix() {
        let tmp = std::env::temp_dir().join(format!("kgent-install-test-{}", std::process::id()));
        let loc = Location::Prefix(tmp.clone());
        let dir = install(&loc, "kgent-test", None).unwrap();
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap())
                .unwrap();
        assert_eq!(spec["interrupt_mode"], "message");
        assert_eq!(spec["language"], "bpftrace");
        assert_eq!(spec["argv"][1], "kernel");
        assert_eq!(spec["argv"][3], "{connection_file}");
        assert!(dir.join("logo-64x64.png").exists());
        assert_eq!(uninstall(&loc, "kgent-test").unwrap(), Some(dir.clone()));
        assert!(!dir.exists());
        assert_eq!(uninstall(&loc, "kgent-test").unwrap(), None);
        assert!(install(&loc, "bad name!", None).is_err());
        let _ = std::fs::remove_dir_all(tmp);
    }
}
