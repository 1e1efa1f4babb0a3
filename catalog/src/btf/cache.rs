//! An on-disk copy of the tables [`BtfTypes`] builds over the kernel's own BTF, so that a
//! short-lived `kgent check` does not redo them in every process.
//!
//! Checking the 5.5 MB `/sys/kernel/btf/vmlinux` and finding each type's record costs ~2 ms of
//! CPU, and the struct, union, typedef and enumerator name indexes ~2 ms more; reading them
//! back from this file costs ~0.3 ms. The kernel's BTF is part of the running kernel image and
//! cannot change until the next boot, so the file is keyed by the boot id (plus the blob's
//! path, length and a fingerprint of its first and last pages, in case of a mix-up) and holds
//! the tables for one blob only: a new boot overwrites it. A checksum guards against a damaged
//! file; anything unexpected means parsing the blob again. Only sysfs blobs are cached: a
//! saved copy of BTF is an ordinary file that may change under the same name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blob::Mapping;
use super::reader::Tables;
use super::table::{Plain, Table};

const MAGIC: &[u8; 8] = b"KGBTFIDX";
/// Bumped whenever the layout or the meaning of a table changes.
const VERSION: u32 = 1;
/// Bytes at each end of the blob that go into its fingerprint.
const FINGERPRINT_SPAN: usize = 4096;

/// What a cache file must match to be used for a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    boot_id: String,
    path: String,
    len: u64,
    fingerprint: u64,
}

impl Key {
    /// The key for `blob` read from `path` during this boot; `None` when the boot id cannot be
    /// read (then nothing is cached).
    pub(crate) fn new(path: &Path, blob: &[u8]) -> Option<Key> {
        let boot_id = crate::caps::read_proc("/proc/sys/kernel/random/boot_id").ok()?;
        let boot_id = boot_id.trim();
        if boot_id.is_empty() {
            return None;
        }
        let head = &blob[..blob.len().min(FINGERPRINT_SPAN)];
        let tail = &blob[blob.len().saturating_sub(FINGERPRINT_SPAN)..];
        Some(Key {
            boot_id: boot_id.to_string(),
            path: path.to_string_lossy().into_owned(),
            len: blob.len() as u64,
            fingerprint: checksum(head) ^ checksum(tail).rotate_left(17),
        })
    }
}

/// The cache file: `$XDG_CACHE_HOME/kgent/btf-index.bin` (or `~/.cache/kgent/btf-index.bin`).
pub(crate) fn default_file() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("kgent").join("btf-index.bin"))
}

/// The tables kept in `file` for the blob `key` describes, if the file holds them intact.
/// The file is mapped and its tables used in place: reading ~1 MB into fresh memory would
/// cost more page faults than everything else `kgent check` does.
pub(crate) fn load(file: &Path, key: &Key) -> Option<Tables> {
    let f = std::fs::File::open(file).ok()?;
    let map = Arc::new(Mapping::file(&f, f.metadata().ok()?.len())?);
    decode(&map, key)
}

/// Writes the tables `tables` gives for `key` to `file`, replacing what was there (atomically:
/// readers see the old file or the new one). `tables` is only called once the file can be
/// created, so that where nothing can be cached no time goes into building indexes for it.
pub(crate) fn store(
    file: &Path,
    key: &Key,
    tables: impl FnOnce() -> Tables,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique per process and per call: threads of one process may store at the same time.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = file.with_extension(format!("bin.{}.{n}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&encode(key, &tables())))
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A fast 64-bit checksum (four independent multiply-xor lanes over 8-byte words): it guards
/// against damaged files, not against tampering.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes = [1u64, 2, 3, 4];
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h = bytes.len() as u64;
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Pads to the next multiple of 8 bytes, where each table starts so that it can be used in
/// place from the (page-aligned) mapping.
fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(8), 0);
}

/// A table: its length, then (8-byte aligned) its elements, each a run of little-endian u32s
/// (`u8` for the kinds).
fn put_table<T: Plain>(out: &mut Vec<u8>, t: &[T], words: impl Fn(&T) -> Vec<u32>) {
    put_u64(out, t.len() as u64);
    pad(out);
    for e in t {
        for w in words(e) {
            put_u32(out, w);
        }
    }
}

fn encode(key: &Key, t: &Tables) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        128 + t.offsets.len() * 5
            + t.by_kind
                .iter()
                .map(|(_, v)| v.len() * 8 + 24)
                .sum::<usize>()
            + t.enumerators.as_ref().map_or(0, |e| e.len() * 12),
    );
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, VERSION);
    put_bytes(&mut out, key.boot_id.as_bytes());
    put_bytes(&mut out, key.path.as_bytes());
    put_u64(&mut out, key.len);
    put_u64(&mut out, key.fingerprint);
    put_u32(&mut out, u32::from(t.big_endian));
    put_u64(&mut out, t.strings.0 as u64);
    put_u64(&mut out, t.strings.1 as u64);
    put_table(&mut out, &t.offsets, |&o| vec![o]);
    put_u64(&mut out, t.kinds.len() as u64);
    pad(&mut out);
    out.extend_from_slice(&t.kinds);
    put_u64(&mut out, t.by_kind.len() as u64);
    for (kind, index) in &t.by_kind {
        put_u32(&mut out, u32::from(*kind));
        put_table(&mut out, index, |e| vec![e.hash, e.id]);
    }
    match &t.enumerators {
        None => put_u32(&mut out, 0),
        Some(e) => {
            put_u32(&mut out, 1);
            put_table(&mut out, e, |e| vec![e.hash, e.id, e.pos]);
        }
    }
    let sum = checksum(&out);
    put_u64(&mut out, sum);
    out
}

/// Reads what [`encode`] wrote from the mapped file; every length is checked against what is
/// left, and tables are used in place.
struct Reader<'a> {
    map: &'a Arc<Mapping>,
    /// The file without its checksum.
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.body.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.usize()?;
        self.take(n)
    }

    /// A table written by [`put_table`], used where it lies in the mapping.
    fn table<T: Plain>(&mut self) -> Option<Table<T>> {
        let len = self.usize()?;
        self.pos = self.pos.next_multiple_of(8);
        let at = self.pos;
        self.take(len.checked_mul(std::mem::size_of::<T>())?)?;
        Table::mapped(self.map, at, len)
    }
}

fn decode(map: &Arc<Mapping>, key: &Key) -> Option<Tables> {
    // Tables are used as they lie in the file: little-endian u32s.
    if cfg!(target_endian = "big") {
        return None;
    }
    let bytes = map.bytes();
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if u64::from_le_bytes(sum.try_into().ok()?) != checksum(body) {
        return None;
    }
    let mut r = Reader { map, body, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let stored = Key {
        boot_id: String::from_utf8(r.bytes()?.to_vec()).ok()?,
        path: String::from_utf8(r.bytes()?.to_vec()).ok()?,
        len: r.u64()?,
        fingerprint: r.u64()?,
    };
    if stored != *key {
        return None;
    }
    let big_endian = match r.u32()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let strings = (r.usize()?, r.usize()?);
    if strings.0 > strings.1 || strings.1 as u64 > key.len {
        return None;
    }
    let offsets: Table<u32> = r.table()?;
    let kinds: Table<u8> = r.table()?;
    if kinds.len() != offsets.len() {
        return None;
    }
    let kind_count = r.usize()?;
    let mut by_kind = Vec::new();
    for _ in 0..kind_count {
        let kind = u8::try_from(r.u32()?).ok()?;
        by_kind.push((kind, r.table()?));
    }
    let enumerators = match r.u32()? {
        0 => None,
        1 => Some(r.table()?),
        _ => return None,
    };
    if r.pos != body.len() {
        return None;
    }
    Some(Tables {
        big_endian,
        strings,
        offsets,
        kinds,
        by_kind,
        enumerators,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::table::{EnumeratorRef, NameRef};

    fn key() -> Key {
        Key {
            boot_id: "6fcff950-2064-4fc8-a38f-1dfa72589971".into(),
            path: "/sys/kernel/btf/vmlinux".into(),
            len: 1000,
            fingerprint: 42,
        }
    }

    fn names(v: &[(u32, u32)]) -> Table<NameRef> {
        v.iter()
            .map(|&(hash, id)| NameRef { hash, id })
            .collect::<Vec<_>>()
            .into()
    }

    fn tables() -> Tables {
        Tables {
            big_endian: false,
            strings: (100, 900),
            offsets: vec![0, 24, 40, 64, 80].into(),
            kinds: vec![0, 1, 4, 8, 6].into(),
            by_kind: vec![(4, names(&[(7, 2)])), (8, names(&[(3, 3), (9, 3)]))],
            enumerators: Some(
                vec![
                    EnumeratorRef {
                        hash: 5,
                        id: 4,
                        pos: 0,
                    },
                    EnumeratorRef {
                        hash: 6,
                        id: 4,
                        pos: 1,
                    },
                ]
                .into(),
            ),
        }
    }

    /// Decodes `bytes` as a cache file (they must be mapped to be decoded).
    fn decode_bytes(bytes: &[u8], key: &Key) -> Option<Tables> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("btf-index.bin");
        std::fs::write(&path, bytes).unwrap();
        load(&path, key)
    }

    #[test]
    fn round_trips_for_the_same_key_only() {
        let bytes = encode(&key(), &tables());
        assert_eq!(decode_bytes(&bytes, &key()), Some(tables()));
        let other_boot = Key {
            boot_id: "another-boot".into(),
            ..key()
        };
        assert_eq!(decode_bytes(&bytes, &other_boot), None);
        let other_len = Key { len: 1001, ..key() };
        assert_eq!(decode_bytes(&bytes, &other_len), None);
        let no_enums = Tables {
            enumerators: None,
            ..tables()
        };
        assert_eq!(
            decode_bytes(&encode(&key(), &no_enums), &key()),
            Some(no_enums)
        );
    }

    #[test]
    fn damaged_files_are_refused() {
        let bytes = encode(&key(), &tables());
        for cut in 0..bytes.len() {
            assert_eq!(decode_bytes(&bytes[..cut], &key()), None, "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert_eq!(decode_bytes(&b, &key()), None, "flipped byte {at}");
        }
    }

    #[test]
    fn stores_and_loads_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("btf-index.bin");
        assert!(load(&file, &key()).is_none());
        store(&file, &key(), tables).unwrap();
        assert_eq!(load(&file, &key()), Some(tables()));
        // Nothing is left behind but the file.
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("btf-index.bin")]);
    }
}
