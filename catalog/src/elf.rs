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
        ElfProbes::read_with(path, ElfData::read)
    }

    /// [`ElfProbes::read`] with the files (the ELF file, its debug file) read by `read`.
    fn read_with(
        path: &Path,
        read: fn(&Path) -> std::io::Result<ElfData>,
    ) -> Result<ElfProbes, CatalogError> {
        let data = read(path).map_err(|source| CatalogError::Io {
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
                if let Ok(bytes) = read(&debug) {
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

/// Files smaller than this are read whole: reading only their symbol tables saves little.
const SPARSE_MIN: u64 = 256 * 1024;

/// The bytes of an ELF file as far as listing its functions and USDT probes reads them.
///
/// A library is mostly code and data that listing never looks at (libc and its debug file:
/// 6 MB, of which the headers, symbol and string tables and notes are ~0.5 MB), and reading
/// all of it into fresh memory costs milliseconds, mostly in page faults. So large files
/// are read sparsely: a zero-filled buffer of the file's size (untouched pages cost nothing)
/// into which only the ELF and program headers, the section headers and the contents of the
/// symbol tables, string tables, notes and `.gnu_debuglink` are read, at their offsets. The
/// parser sees the same bytes wherever it looks; anything unexpected reads the whole file.
enum ElfData {
    Whole(Vec<u8>),
    Sparse(ZeroedBuf),
}

impl std::ops::Deref for ElfData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ElfData::Whole(v) => v,
            ElfData::Sparse(b) => b.bytes(),
        }
    }
}

impl ElfData {
    fn read(path: &Path) -> std::io::Result<ElfData> {
        ElfData::read_as(path, true)
    }

    /// Reads the whole file unless `sparse` allows reading only what listing uses.
    fn read_as(path: &Path, sparse: bool) -> std::io::Result<ElfData> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if sparse && len >= SPARSE_MIN {
            if let Some(buf) = read_sparse(&file, len) {
                return Ok(ElfData::Sparse(buf));
            }
        }
        let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut v)?;
        Ok(ElfData::Whole(v))
    }
}

/// A private anonymous mapping: zero-filled, and only the pages written to take memory.
struct ZeroedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl ZeroedBuf {
    fn new(len: usize) -> Option<ZeroedBuf> {
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(ZeroedBuf {
            ptr: std::ptr::NonNull::new(ptr.cast::<u8>())?,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` bytes mapped readable until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, mapped writable, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ZeroedBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Reads the parts of an ELF file that [`ElfProbes::read`] uses into a zeroed buffer of the
/// file's size (see [`ElfData`]); `None` when the file does not parse as ELF this way.
fn read_sparse(file: &std::fs::File, len: u64) -> Option<ZeroedBuf> {
    let mut buf = ZeroedBuf::new(usize::try_from(len).ok()?)?;
    load(file, &mut buf, 0, 4096)?;
    match object::FileKind::parse(buf.bytes()).ok()? {
        object::FileKind::Elf32 => {
            fill::<object::elf::FileHeader32<object::Endianness>>(file, &mut buf)?
        }
        object::FileKind::Elf64 => {
            fill::<object::elf::FileHeader64<object::Endianness>>(file, &mut buf)?
        }
        _ => return None,
    }
    Some(buf)
}

/// Reads file bytes `start..start + size` (cut at the end of the file) into the same place
/// of `buf`.
fn load(file: &std::fs::File, buf: &mut ZeroedBuf, start: u64, size: u64) -> Option<()> {
    use std::os::unix::fs::FileExt;
    let bytes = buf.bytes_mut();
    let start_at = usize::try_from(start).ok()?.min(bytes.len());
    let end = usize::try_from(start.saturating_add(size))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    if start_at >= end {
        return Some(());
    }
    file.read_exact_at(&mut bytes[start_at..end], start).ok()
}

/// Fills in, step by step, what parsing needs: section 0 (extended counts), program and
/// section headers, then the contents of the sections and note segments listing reads.
fn fill<Elf: FileHeader<Endian = object::Endianness>>(
    file: &std::fs::File,
    buf: &mut ZeroedBuf,
) -> Option<()> {
    use object::elf::{
        PT_NOTE, SHT_DYNSYM, SHT_NOBITS, SHT_NOTE, SHT_STRTAB, SHT_SYMTAB, SHT_SYMTAB_SHNDX,
    };
    use object::read::elf::ProgramHeader;
    let shdr_size = std::mem::size_of::<Elf::SectionHeader>() as u64;
    let phdr_size = std::mem::size_of::<Elf::ProgramHeader>() as u64;
    // Each step parses again: the header borrows the buffer that loading writes to.
    let shoff: u64 = {
        let h = Elf::parse(buf.bytes()).ok()?;
        h.e_shoff(h.endian().ok()?).into()
    };
    if shoff != 0 {
        load(file, buf, shoff, shdr_size)?;
    }
    let (phoff, phnum, shnum) = {
        let data = buf.bytes();
        let h = Elf::parse(data).ok()?;
        let e = h.endian().ok()?;
        let phoff: u64 = h.e_phoff(e).into();
        let phnum = if phoff == 0 {
            0
        } else {
            h.phnum(e, data).ok()?
        };
        (phoff, phnum, h.shnum(e, data).ok()?)
    };
    load(file, buf, phoff, u64::from(phnum).saturating_mul(phdr_size))?;
    if shoff != 0 {
        load(file, buf, shoff, u64::from(shnum).saturating_mul(shdr_size))?;
    }
    let mut ranges = Vec::new();
    {
        let data = buf.bytes();
        let h = Elf::parse(data).ok()?;
        let e = h.endian().ok()?;
        let sections = h.section_headers(e, data).ok()?;
        let range = |s: &Elf::SectionHeader| -> Option<(u64, u64)> {
            (s.sh_type(e) != SHT_NOBITS).then(|| (s.sh_offset(e).into(), s.sh_size(e).into()))
        };
        if !sections.is_empty() {
            let shstrndx = h.shstrndx(e, data).ok()? as usize;
            ranges.extend(sections.get(shstrndx).and_then(range));
        }
        for s in sections {
            let t = s.sh_type(e);
            if matches!(
                t,
                SHT_SYMTAB | SHT_DYNSYM | SHT_STRTAB | SHT_NOTE | SHT_SYMTAB_SHNDX
            ) {
                ranges.extend(range(s));
            }
            if matches!(t, SHT_SYMTAB | SHT_DYNSYM) {
                ranges.extend(sections.get(s.sh_link(e) as usize).and_then(range));
            }
        }
        // Without section headers, notes (the build id) come from the program headers.
        for p in h.program_headers(e, data).ok()? {
            if p.p_type(e) == PT_NOTE {
                ranges.push((p.p_offset(e).into(), p.p_filesz(e).into()));
            }
        }
    }
    for (start, size) in ranges {
        load(file, buf, start, size)?;
    }
    // `.gnu_debuglink` is found by name, which needs the section names read above.
    let debuglink = {
        let data = buf.bytes();
        let h = Elf::parse(data).ok()?;
        let e = h.endian().ok()?;
        let sections = h.sections(e, data).ok()?;
        sections
            .section_by_name(e, b".gnu_debuglink")
            .filter(|(_, s)| s.sh_type(e) != SHT_NOBITS)
            .map(|(_, s)| (s.sh_offset(e).into(), s.sh_size(e).into()))
    };
    if let Some((start, size)) = debuglink {
        load(file, buf, start, size)?;
    }
    Some(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sparse reading lists exactly what reading the whole file lists, for the large ELF
    /// files of this system (libraries, programs, debug files; skipped where there are none).
    #[test]
    fn sparse_reads_list_the_same_as_whole_reads() {
        let mut files = Vec::new();
        for dir in [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/bin",
            "/usr/sbin",
            "/usr/lib/debug/.build-id",
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let inner = if p.is_dir() {
                    std::fs::read_dir(&p)
                        .map(|d| d.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default()
                } else {
                    vec![p]
                };
                files.extend(inner.into_iter().filter(|p| {
                    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() >= SPARSE_MIN)
                }));
            }
        }
        files.sort();
        // Bounded test time; a spread over the sorted list.
        let step = (files.len() / 150).max(1);
        let mut sparse_used = 0;
        for path in files.iter().step_by(step) {
            let whole = ElfProbes::read_with(path, |p| ElfData::read_as(p, false));
            let sparse = ElfProbes::read_with(path, ElfData::read);
            match (whole, sparse) {
                (Ok(w), Ok(s)) => {
                    assert_eq!(
                        w.funcs.iter().collect::<Vec<_>>(),
                        s.funcs.iter().collect::<Vec<_>>(),
                        "{}",
                        path.display()
                    );
                    assert_eq!(
                        w.usdt.iter().collect::<Vec<_>>(),
                        s.usdt.iter().collect::<Vec<_>>(),
                        "{}",
                        path.display()
                    );
                }
                (Err(w), Err(s)) => assert_eq!(w.to_string(), s.to_string()),
                (w, s) => panic!("{}: {w:?} vs {s:?}", path.display()),
            }
            let f = std::fs::File::open(path).unwrap();
            if read_sparse(&f, f.metadata().unwrap().len()).is_some() {
                sparse_used += 1;
            }
        }
        eprintln!("{sparse_used} files read sparsely");
    }
}
