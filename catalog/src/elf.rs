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
        for sym in file.symbols().chain(file.dynamic_symbols()) {
            if sym.kind() != SymbolKind::Text || !sym.is_definition() {
                continue;
            }
            if let Ok(name) = sym.name() {
                if !name.is_empty() {
                    funcs.push(name, 0);
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
