//! Kernel BTF: a reader for the raw BTF format ([`BtfTypes`]) and, on top of it, the catalog's
//! index of kernel functions with their C signatures.
//!
//! The reader is our own, written from the kernel's `Documentation/bpf/btf.rst`, so that the
//! crate stays MIT-licensed. It is public for code that checks programs against kernel types:
//! look up structs, members, typedefs, enums and function signatures, and spell types in C.

mod blob;
mod cache;
mod reader;
mod render;
mod table;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::OnceLock;

pub use reader::{
    Array, BtfError, BtfTypes, Composite, Datasec, DeclTag, Enum, EnumValue, EnumValues, Func,
    FuncProto, Int, Kind, Linkage, Member, Members, Param, Params, SecVar, SecVars, Type, TypeData,
    TypeId, Var,
};

use blob::{Blob, Mapping};

use crate::catalog::Field;
use crate::error::CatalogError;
use crate::names::{NameSet, NameSetBuilder};

impl BtfTypes {
    /// Reads and parses a raw BTF file such as `/sys/kernel/btf/vmlinux`.
    ///
    /// The kernel's own BTF (a sysfs file) is memory-mapped where the kernel allows it (6.16
    /// and later): in a fresh process that takes ~0.2 ms instead of the 3.5-7 ms of reading it
    /// (4 KiB per `read` from sysfs, and a fault per page of the new buffer). Other files are
    /// read into memory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<BtfTypes, CatalogError> {
        BtfTypes::from_file_cached(path.as_ref(), None)
    }

    /// [`BtfTypes::from_file`], keeping the tables and name indexes of the kernel's own BTF
    /// (a sysfs file) in the index cache file `cache` for the rest of this boot, and taking
    /// them from there when they are. Other files are always parsed.
    pub(crate) fn from_file_cached(
        path: &Path,
        cache: Option<&Path>,
    ) -> Result<BtfTypes, CatalogError> {
        let io = |source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let btf_error = |e: BtfError| CatalogError::Btf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let blob = match Mapping::sysfs(&file, len) {
            Some(m) => {
                let blob = Blob::Mapped(m);
                let key = cache.and_then(|c| Some((c, cache::Key::new(path, &blob)?)));
                let Some((cache_file, key)) = key else {
                    return BtfTypes::from_blob(blob).map_err(btf_error);
                };
                if let Some(tables) = cache::load(cache_file, &key) {
                    return Ok(BtfTypes::with_tables(blob, tables));
                }
                let types = BtfTypes::from_blob(blob).map_err(btf_error)?;
                // A cache that cannot be written only costs the next process the parse.
                let _ = cache::store(cache_file, &key, || types.tables());
                return Ok(types);
            }
            None => {
                use std::io::Read;
                let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                file.read_to_end(&mut v).map_err(io)?;
                Blob::Owned(v)
            }
        };
        BtfTypes::from_blob(blob).map_err(btf_error)
    }
}

/// Parsed BTF plus a sorted index of FUNC names (tagged with their type ids), built on first
/// use: type lookups alone (struct members, typedefs) do not pay the ~2 ms for it.
pub(crate) struct BtfIndex {
    pub(crate) types: BtfTypes,
    funcs: OnceLock<NameSet>,
}

impl std::fmt::Debug for BtfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: the 56k function names would drown a `Catalog` debug print.
        f.debug_struct("BtfIndex")
            .field("types", &self.types)
            .field("funcs", &self.funcs.get().map(NameSet::len))
            .finish()
    }
}

impl BtfIndex {
    /// Opens and parses a raw BTF file; the function index is built on first use.
    pub(crate) fn load(path: &Path) -> Result<BtfIndex, CatalogError> {
        let types = BtfTypes::from_file_cached(path, cache::default_file().as_deref())?;
        Ok(BtfIndex {
            types,
            funcs: OnceLock::new(),
        })
    }

    /// The sorted FUNC names, tagged with their type ids.
    pub(crate) fn funcs(&self) -> &NameSet {
        self.funcs.get_or_init(|| index_funcs(&self.types))
    }

    /// Typed parameters and return type of kernel function `name`.
    pub(crate) fn signature(&self, name: &str) -> Option<(Vec<Field>, String)> {
        let funcs = self.funcs();
        let id = funcs.tag(funcs.find(name)?);
        let btf = &self.types;
        let TypeData::Func(func) = btf.type_by_id(id).ok()?.data else {
            return None;
        };
        let TypeData::FuncProto(proto) = btf.type_by_id(func.proto).ok()?.data else {
            return None;
        };
        let ret = btf.type_name(proto.ret);
        let mut fields = Vec::with_capacity(proto.params().len() + 1);
        for (i, p) in proto.params().enumerate() {
            let (size, signed) = btf.size_and_sign(p.ty);
            // Arguments sit in 8-byte slots of the probe context, so the slot is the offset.
            fields.push(Field {
                name: if p.name.is_empty() {
                    format!("arg{i}")
                } else {
                    p.name.to_string()
                },
                c_type: btf.type_name(p.ty),
                offset: i * 8,
                size,
                signed,
            });
        }
        if proto.variadic {
            fields.push(Field {
                name: "...".into(),
                c_type: "...".into(),
                offset: fields.len() * 8,
                size: 0,
                signed: false,
            });
        }
        Some((fields, ret))
    }
}

/// Builds the sorted index of FUNC names (id 0 is `void`, never a FUNC).
fn index_funcs(btf: &BtfTypes) -> NameSet {
    let mut names = NameSetBuilder::with_capacity(1 << 20, 1 << 16);
    for id in 1..btf.len() as u32 {
        if btf.kind_of(id) == Some(Kind::Func) {
            match btf.name_of(id) {
                Some(name) if !name.is_empty() => names.push(name, id),
                _ => {}
            }
        }
    }
    names.build()
}
