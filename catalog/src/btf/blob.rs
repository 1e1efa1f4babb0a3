//! The bytes of a BTF blob: a buffer of our own, or a read-only mapping of the kernel's BTF.
//!
//! Reading `/sys/kernel/btf/vmlinux` (5.5 MB) costs 3.5-7 ms in a fresh process: sysfs hands
//! it out 4 KiB per `read` call and every page of the new buffer faults in. Mapping it (Linux
//! 6.16 and later) takes ~0.05 ms and touching all of it ~0.15 ms, which matters for a
//! short-lived `kgent check`. Only sysfs files are mapped: their size cannot change under us,
//! whereas a regular file truncated while mapped would fault (SIGBUS) on access.

use std::fs::File;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// `statfs.f_type` of sysfs (`SYSFS_MAGIC` in `linux/magic.h`).
const SYSFS_MAGIC: i64 = 0x6265_6572;

pub(crate) enum Blob {
    Owned(Vec<u8>),
    Mapped(Mapping),
}

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Blob::Owned(v) => v,
            Blob::Mapped(m) => m.bytes(),
        }
    }
}

/// A private, read-only mapping of a whole file: a sysfs BTF blob, or the index cache file
/// (which kgent only ever replaces by renaming a new file over it, never rewrites in place).
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and nothing in this process writes to it; the kernel never
// changes a sysfs BTF blob, and the index cache file is replaced, not modified, so shared
// references to it may cross threads.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: the bytes are immutable for the life of the mapping.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file` when it lives on sysfs; `None` for other files,
    /// an empty file, or a kernel that cannot map it (before 6.16: `read` it instead).
    pub(crate) fn sysfs(file: &File, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        let fd = file.as_raw_fd();
        // SAFETY: statfs is plain data, for which all-zero bytes are a valid value.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fd is an open descriptor owned by `file`, and `fs` is a valid out-pointer.
        if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
            return None;
        }
        // `f_type` is i64 on x86-64 glibc, narrower elsewhere.
        #[allow(clippy::useless_conversion)]
        let fs_type = i64::from(fs.f_type);
        if fs_type != SYSFS_MAGIC {
            return None;
        }
        Mapping::file(file, len as u64)
    }

    /// Maps the first `len` bytes of any file; `None` for an empty file or when mapping fails.
    /// Only for files nobody truncates while they are mapped (that would raise SIGBUS): sysfs
    /// files, and the index cache, which is replaced by rename.
    pub(crate) fn file(file: &File, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        let fd = file.as_raw_fd();
        // SAFETY: a fresh read-only private mapping of an open descriptor; the kernel picks the
        // address, and the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            ptr: NonNull::new(ptr.cast::<u8>())?,
            len,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` readable bytes, mapped until `self` is dropped, and
        // nothing writes to them (see the Send/Sync impls).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `file`; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{BtfTypes, Kind};

    #[test]
    fn only_sysfs_files_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        std::fs::write(&path, b"not btf").unwrap();
        let file = File::open(&path).unwrap();
        assert!(Mapping::sysfs(&file, 7).is_none());
    }

    /// The kernel's BTF mapped reads the same as the kernel's BTF read (skipped where there
    /// is none, or the kernel cannot map it).
    #[test]
    fn live_mapped_vmlinux_matches_the_read_copy() {
        let path = "/sys/kernel/btf/vmlinux";
        let Ok(file) = File::open(path) else {
            eprintln!("skipped: no {path}");
            return;
        };
        let len = file.metadata().unwrap().len();
        let Some(map) = Mapping::sysfs(&file, len) else {
            eprintln!("skipped: this kernel cannot map {path}");
            return;
        };
        assert_eq!(map.bytes().len() as u64, len);
        let mapped = BtfTypes::from_blob(Blob::Mapped(map)).unwrap();
        let read = BtfTypes::from_vec(std::fs::read(path).unwrap()).unwrap();
        assert_eq!(mapped.len(), read.len());
        for id in (1..read.len() as u32).step_by(97) {
            assert_eq!(mapped.name_of(id), read.name_of(id));
            assert_eq!(mapped.type_name(id), read.type_name(id));
        }
        let sock = mapped.find_by_name(Kind::Struct, "sock");
        assert!(sock.is_some());
        assert_eq!(sock, read.find_by_name(Kind::Struct, "sock"));
        // from_file maps it.
        let from_file = BtfTypes::from_file(path).unwrap();
        assert!(matches!(from_file.blob, Blob::Mapped(_)));
        // Shared across threads.
        std::thread::scope(|s| {
            let h = s.spawn(|| mapped.find_by_name(Kind::Typedef, "__be16"));
            assert!(h.join().unwrap().is_some());
        });
    }
}
