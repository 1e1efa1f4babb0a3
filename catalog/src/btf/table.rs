//! Read-only arrays of plain values that live either in our own memory or, unchanged, in a
//! mapped index-cache file (see `cache`): used in place, a cached table costs no copy and no
//! page faults beyond the pages a lookup touches.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use super::blob::Mapping;

/// Types made of `u8`/`u32` fields only, with a fixed layout: any bytes of the right length
/// and alignment are a valid value.
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or primitive), without padding, valid for every bit
/// pattern, and contain no pointers.
pub(crate) unsafe trait Plain: Copy + 'static {}

// SAFETY: primitives without invalid bit patterns.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}

/// One named type in a name index: the FNV-1a hash of its name and its id. Ordered by hash,
/// then id.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NameRef {
    pub(crate) hash: u32,
    pub(crate) id: u32,
}

// SAFETY: repr(C), two u32 fields, no padding.
unsafe impl Plain for NameRef {}

/// One enumerator: the hash of its name, the id of its ENUM/ENUM64 type and its position among
/// that type's values. Ordered by hash, then id, then position.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EnumeratorRef {
    pub(crate) hash: u32,
    pub(crate) id: u32,
    pub(crate) pos: u32,
}

// SAFETY: repr(C), three u32 fields, no padding.
unsafe impl Plain for EnumeratorRef {}

/// A read-only `[T]`, owned or inside a mapping.
pub(crate) struct Table<T: Plain> {
    repr: Repr<T>,
}

enum Repr<T> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<Mapping>,
        /// Byte offset of the first element in the mapping.
        at: usize,
        /// Number of elements.
        len: usize,
        _t: PhantomData<T>,
    },
}

impl<T: Plain> Table<T> {
    /// `len` elements at byte offset `at` of `map`; `None` when they do not fit in the mapping
    /// or are misaligned for `T`.
    pub(crate) fn mapped(map: &Arc<Mapping>, at: usize, len: usize) -> Option<Table<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let all = map.bytes();
        let region = all.get(at..at.checked_add(bytes)?)?;
        if region.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 {
            return None;
        }
        Some(Table {
            repr: Repr::Mapped {
                map: Arc::clone(map),
                at,
                len,
                _t: PhantomData,
            },
        })
    }
}

impl<T: Plain> Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.repr {
            Repr::Owned(v) => v,
            Repr::Mapped { map, at, len, .. } => {
                // SAFETY: `mapped` checked that `len` elements at `at` lie inside the mapping
                // and are aligned for T; T is valid for any bytes (`Plain`); the mapping is
                // read-only, never written while mapped, and lives as long as `map`, which
                // `self` keeps.
                unsafe {
                    std::slice::from_raw_parts(map.bytes().as_ptr().add(*at).cast::<T>(), *len)
                }
            }
        }
    }
}

impl<T: Plain> From<Vec<T>> for Table<T> {
    fn from(v: Vec<T>) -> Table<T> {
        Table {
            repr: Repr::Owned(v),
        }
    }
}

impl<T: Plain> Default for Table<T> {
    fn default() -> Table<T> {
        Vec::new().into()
    }
}

impl<T: Plain + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Table<T>) -> bool {
        **self == **other
    }
}

impl<T: Plain + Eq> Eq for Table<T> {}

impl<T: Plain + fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
