//! Function symbols and USDT (`.note.stapsdt`) probes of user-space ELF files, for `uprobe:` and
//! `usdt:` listings (via the `object` crate).

use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile, FileHeader, SectionHeader};
use object::{Object, ObjectSymbol, ReadRef, SymbolKind};

use crate::error::CatalogError;
use crate::names::{NameSet, NameSetBuilder};

/// `NT_STAPSDT`, the note type of SystemTap/USDT probe descriptors.
const NT_STAPSDT: object::elf::NoteType = object::elf::NoteType(3);

/// What one ELF file offers to uprobe and usdt.
#[derive(Debug)]
pub(crate) struct ElfProbes {
    /// Defined function symbols from `.symtab` and `.dynsym`.
    pub(crate) funcs: NameSet,
    /// USDT probes as "provider:name".
    pub(crate) usdt: NameSet,
}

impl ElfProbes {
    pub(crate) fn read(path: &Path) -> Result<ElfProbes, CatalogError> {
        let data = std::fs::read(path).map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |reason: String| CatalogError::Elf {
            path: path.to_path_buf(),
            reason,
        };
        let file = object::File::parse(&*data).map_err(|e| err(e.to_string()))?;
        let mut funcs = NameSetBuilder::default();
        push_functions(&file, &mut funcs);
        // Stripped files (Debian's libc) keep local functions in a separate debug file; bpftrace
        // reads it too, so `uprobe:libc:malloc_*` lists the same names.
        if file.symbol_table().is_none() {
            if let Some(debug) = debug_file(path, &file) {
                if let Ok(bytes) = std::fs::read(&debug) {
                    if let Ok(dfile) = object::File::parse(&*bytes) {
                        push_functions(&dfile, &mut funcs);
                    }
                }
            }
        }
        let usdt = match &file {
            object::File::Elf64(f) => stapsdt_notes(f),
            object::File::Elf32(f) => stapsdt_notes(f),
            _ => return Err(err("not an ELF file".into())),
        };
        Ok(ElfProbes {
            funcs: funcs.build(),
            usdt: NameSet::from_names(usdt.iter().map(String::as_str)),
        })
    }
}

/// Defined function symbols (STT_FUNC and STT_GNU_IFUNC) of `.symtab` and `.dynsym`.
/// Imported (undefined) functions are left out: they have no code in this file to probe,
/// although bpftrace 0.17 lists them. `.part.N` pieces of split functions are left out as
/// bpftrace does.
fn push_functions(file: &object::File<'_>, out: &mut NameSetBuilder) {
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        // `is_definition()` would drop IFUNCs (memcpy, strlen...), so test the section instead.
        if sym.kind() != SymbolKind::Text || sym.is_undefined() {
            continue;
        }
        if let Ok(name) = sym.name() {
            if !name.is_empty() && !name.contains(".part.") {
                out.push(name, 0);
            }
        }
    }
}

/// Where the separate debug file of `path` lives: by build id under
/// `/usr/lib/debug/.build-id/`, else by `.gnu_debuglink` name next to the file, in its `.debug/`
/// directory, or under `/usr/lib/debug/` (the places gdb and bcc look).
fn debug_file(path: &Path, file: &object::File<'_>) -> Option<PathBuf> {
    const DEBUG_ROOT: &str = "/usr/lib/debug";
    if let Ok(Some(id)) = file.build_id() {
        if id.len() > 1 {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let p = Path::new(DEBUG_ROOT)
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..]));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let (name, _crc) = file.gnu_debuglink().ok()??;
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    let dir = real.parent()?;
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    [
        dir.join(name),
        dir.join(".debug").join(name),
        Path::new(DEBUG_ROOT).join(rel).join(name),
    ]
    .into_iter()
    // The debuglink may name the file itself; that adds nothing.
    .find(|p| p.is_file() && std::fs::canonicalize(p).ok().as_deref() != Some(real.as_path()))
}

/// "provider:name" of every stapsdt note. Each note's descriptor is three addresses (probe pc,
/// `.stapsdt.base`, semaphore) followed by the NUL-terminated provider, name and argument strings.
fn stapsdt_notes<'data, Elf: FileHeader, R: ReadRef<'data>>(
    file: &ElfFile<'data, Elf, R>,
) -> Vec<String> {
    let endian = file.endian();
    let addr_size = if file.elf_header().is_type_64() { 8 } else { 4 };
    let mut out = Vec::new();
    for section in file.elf_section_table().iter() {
        let Ok(Some(mut notes)) = section.notes(endian, file.data()) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() != b"stapsdt" || note.n_type(endian) != NT_STAPSDT {
                continue;
            }
            let Some(strings) = note.desc().get(3 * addr_size..) else {
                continue;
            };
            let mut parts = strings.split(|b| *b == 0);
            let (Some(provider), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let (Ok(p), Ok(n)) = (std::str::from_utf8(provider), std::str::from_utf8(name)) {
                if !p.is_empty() && !n.is_empty() {
                    out.push(format!("{p}:{n}"));
                }
            }
        }
    }
    out
}

/// Finds the file a uprobe/usdt target names, as bpftrace does: a path is used as is; a bare
/// program name is looked up in `$PATH`; a bare library name (`libc`, `c`) in the usual library
/// directories (`libc` -> `/lib/x86_64-linux-gnu/libc.so.6`).
pub(crate) fn resolve_target(target: &str) -> Option<PathBuf> {
    if target.is_empty() {
        return None;
    }
    if target.contains('/') {
        let p = PathBuf::from(target);
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(target);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let lib = if target.starts_with("lib") {
        target.to_string()
    } else {
        format!("lib{target}")
    };
    let dirs = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        // Prefer the runtime name (libc.so.6) over the dev symlink (libc.so, often a linker
        // script), and the shortest match over versioned variants.
        let mut best: Option<PathBuf> = None;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(&lib) else {
                continue;
            };
            if !rest.starts_with(".so.") {
                continue;
            }
            let p = e.path();
            if best
                .as_ref()
                .is_none_or(|b| p.as_os_str().len() < b.as_os_str().len())
            {
                best = Some(p);
            }
        }
        if best.is_some() {
            return best;
        }
    }
    None
}
