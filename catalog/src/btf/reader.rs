//! A read-only table of BTF types parsed from a raw BTF blob (the format of
//! `/sys/kernel/btf/vmlinux`, described in the kernel's `Documentation/bpf/btf.rst`).
//!
//! Parsing makes one pass over the type section, recording where each type starts and checking
//! record lengths, kinds, string offsets and type references, then one pass over that table for
//! `FUNC` targets and loops of typedefs/qualifiers/pointers. Lookups can rely on all of that.
//! Records are decoded on access, so loading the 5.5 MB kernel blob allocates two small tables
//! and nothing per type.

use std::fmt;
use std::sync::OnceLock;

use super::blob::Blob;
use super::table::{EnumeratorRef, NameRef, Table};

/// Index of a type in the table; 0 is `void`.
pub type TypeId = u32;

/// Chains of typedefs and qualifiers longer than this are treated as loops. Parsing already
/// rejects loops; the bound keeps lookups finite even so (real kernel chains are < 10).
const MAX_CHAIN: usize = 64;

const HEADER_LEN: usize = 24;
const MAGIC: u16 = 0xeb9f;

/// What is wrong with a BTF blob or a lookup in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The blob ends before something it declares.
    #[error("truncated: {what} needs bytes {start}..{end}, the blob has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        start: u64,
        /// Where it ends.
        end: u64,
        /// Length of the blob or section it should fit in.
        len: u64,
    },
    /// The blob does not start with the BTF magic number.
    #[error("not BTF: magic {0:#06x}, expected 0xeb9f")]
    BadMagic(u16),
    /// A BTF version this reader does not know (only version 1 exists).
    #[error("unsupported BTF version {0}")]
    Version(u8),
    /// The header is inconsistent.
    #[error("bad BTF header: {0}")]
    Header(&'static str),
    /// The string section is unusable.
    #[error("bad string section: {0}")]
    Strings(&'static str),
    /// A type record is malformed.
    #[error("type {id}: {reason}")]
    BadType {
        /// The type's id.
        id: TypeId,
        /// What is wrong with it.
        reason: String,
    },
    /// A lookup named a type id past the end of the table.
    #[error("no type with id {0}")]
    NoType(TypeId),
    /// A chain of typedefs/qualifiers does not end.
    #[error("type {0} is part of a loop")]
    Loop(TypeId),
    /// The type has no size (`void`, functions, forward declarations).
    #[error("type {0} has no size")]
    NoSize(TypeId),
}

fn bad(id: usize, reason: impl Into<String>) -> BtfError {
    BtfError::BadType {
        id: u32::try_from(id).unwrap_or(u32::MAX),
        reason: reason.into(),
    }
}

/// The kind of a BTF type (`BTF_KIND_*`), without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// Type id 0.
    Void,
    /// Integer, `char` or `_Bool`.
    Int,
    /// Pointer.
    Ptr,
    /// Array.
    Array,
    /// `struct`.
    Struct,
    /// `union`.
    Union,
    /// `enum` with 32-bit values.
    Enum,
    /// Forward declaration of a struct or union.
    Fwd,
    /// `typedef`.
    Typedef,
    /// `volatile` qualifier.
    Volatile,
    /// `const` qualifier.
    Const,
    /// `restrict` qualifier.
    Restrict,
    /// A function (name and linkage; the signature is its `FuncProto`).
    Func,
    /// A function signature.
    FuncProto,
    /// A global variable.
    Var,
    /// A data section listing variables.
    Datasec,
    /// Floating-point type.
    Float,
    /// A tag (`__attribute__((btf_decl_tag))`) on a declaration.
    DeclTag,
    /// A tag (`__attribute__((btf_type_tag))`, e.g. `__user`) on a type.
    TypeTag,
    /// `enum` with 64-bit values.
    Enum64,
}

impl Kind {
    fn from_raw(kind: u32) -> Option<Kind> {
        Some(match kind {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// The kind number of the format (`BTF_KIND_*`; 0 for `void`).
    fn raw(self) -> u8 {
        match self {
            Kind::Void => 0,
            Kind::Int => 1,
            Kind::Ptr => 2,
            Kind::Array => 3,
            Kind::Struct => 4,
            Kind::Union => 5,
            Kind::Enum => 6,
            Kind::Fwd => 7,
            Kind::Typedef => 8,
            Kind::Volatile => 9,
            Kind::Const => 10,
            Kind::Restrict => 11,
            Kind::Func => 12,
            Kind::FuncProto => 13,
            Kind::Var => 14,
            Kind::Datasec => 15,
            Kind::Float => 16,
            Kind::DeclTag => 17,
            Kind::TypeTag => 18,
            Kind::Enum64 => 19,
        }
    }

    /// Lower-case name of the kind (`"struct"`, `"func_proto"`), as `BTF_KIND_*` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Void => "void",
            Kind::Int => "int",
            Kind::Ptr => "ptr",
            Kind::Array => "array",
            Kind::Struct => "struct",
            Kind::Union => "union",
            Kind::Enum => "enum",
            Kind::Fwd => "fwd",
            Kind::Typedef => "typedef",
            Kind::Volatile => "volatile",
            Kind::Const => "const",
            Kind::Restrict => "restrict",
            Kind::Func => "func",
            Kind::FuncProto => "func_proto",
            Kind::Var => "var",
            Kind::Datasec => "datasec",
            Kind::Float => "float",
            Kind::DeclTag => "decl_tag",
            Kind::TypeTag => "type_tag",
            Kind::Enum64 => "enum64",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Linkage of a `FUNC` or `VAR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Linkage {
    /// `static` (0).
    Static,
    /// Global, defined here (1).
    Global,
    /// `extern`, defined elsewhere (2).
    Extern,
    /// A value this reader does not know.
    Other(u32),
}

impl Linkage {
    fn from_raw(v: u32) -> Linkage {
        match v {
            0 => Linkage::Static,
            1 => Linkage::Global,
            2 => Linkage::Extern,
            v => Linkage::Other(v),
        }
    }
}

/// An `INT` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int {
    /// Size in bytes.
    pub size: u32,
    /// `BTF_INT_SIGNED`.
    pub signed: bool,
    /// `BTF_INT_CHAR`: a character type (only for pretty printing).
    pub char: bool,
    /// `BTF_INT_BOOL`.
    pub bool: bool,
    /// Bit offset of the value inside `size` bytes (non-zero only in old bitfield encodings).
    pub bit_offset: u8,
    /// Number of value bits (`size * 8` unless an old-style bitfield).
    pub bits: u8,
}

/// An `ARRAY` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Array {
    /// Element type.
    pub elem: TypeId,
    /// Index type (an int; not needed to use the array).
    pub index: TypeId,
    /// Number of elements (0 for flexible arrays).
    pub len: u32,
}

/// A `STRUCT` or `UNION` type.
#[derive(Clone, Copy)]
pub struct Composite<'a> {
    /// Size in bytes.
    pub size: u32,
    members: Members<'a>,
}

impl<'a> Composite<'a> {
    /// The members in declaration order.
    pub fn members(&self) -> Members<'a> {
        self.members
    }
}

impl fmt::Debug for Composite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Composite")
            .field("size", &self.size)
            .field("members", &self.members)
            .finish()
    }
}

/// One member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Member name; empty for anonymous struct/union members.
    pub name: &'a str,
    /// Member type.
    pub ty: TypeId,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Width of a bitfield in bits; 0 when the member is not a bitfield.
    pub bitfield_size: u8,
}

/// Iterator over a struct's or union's members.
#[derive(Clone, Copy)]
pub struct Members<'a> {
    btf: &'a BtfTypes,
    records: &'a [u8],
    /// The struct's kind_flag: offsets carry the bitfield size in their top byte.
    kind_flag: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        let (rec, rest) = self.records.split_at_checked(12)?;
        self.records = rest;
        let be = self.btf.big_endian;
        let (name_off, ty, offset) = (word(rec, 0, be), word(rec, 4, be), word(rec, 8, be));
        let (mut bit_offset, mut bitfield_size) = if self.kind_flag {
            (offset & 0x00ff_ffff, (offset >> 24) as u8)
        } else {
            (offset, 0)
        };
        // Without kind_flag a bitfield is a member whose type is an INT narrower than its
        // storage; the INT then carries width and extra offset.
        if !self.kind_flag {
            if let Some(TypeData::Int(i)) = self.btf.type_by_id(ty).ok().map(|t| t.data) {
                if u32::from(i.bits) != i.size.saturating_mul(8) || i.bit_offset != 0 {
                    bitfield_size = i.bits;
                    bit_offset = bit_offset.saturating_add(u32::from(i.bit_offset));
                }
            }
        }
        Some(Member {
            name: self.btf.str_at(name_off).unwrap_or(""),
            ty,
            bit_offset,
            bitfield_size,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.records.len() / 12;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Members<'_> {}

impl fmt::Debug for Members<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// An `ENUM` or `ENUM64` type.
#[derive(Clone, Copy)]
pub struct Enum<'a> {
    /// Size in bytes.
    pub size: u32,
    /// Values are signed (the type's kind_flag).
    pub signed: bool,
    values: EnumValues<'a>,
}

impl<'a> Enum<'a> {
    /// The enumerators in declaration order.
    pub fn values(&self) -> EnumValues<'a> {
        self.values
    }
}

impl fmt::Debug for Enum<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enum")
            .field("size", &self.size)
            .field("signed", &self.signed)
            .field("values", &self.values)
            .finish()
    }
}

/// One enumerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its value; `i128` holds both signed and unsigned 64-bit values exactly.
    pub value: i128,
}

/// Iterator over an enum's values.
#[derive(Clone, Copy)]
pub struct EnumValues<'a> {
    btf: &'a BtfTypes,
    records: &'a [u8],
    wide: bool,
    signed: bool,
}

impl<'a> Iterator for EnumValues<'a> {
    type Item = EnumValue<'a>;

    fn next(&mut self) -> Option<EnumValue<'a>> {
        let be = self.btf.big_endian;
        let step = if self.wide { 12 } else { 8 };
        let (rec, rest) = self.records.split_at_checked(step)?;
        self.records = rest;
        let lo = word(rec, 4, be);
        let value = if self.wide {
            let v = (u64::from(word(rec, 8, be)) << 32) | u64::from(lo);
            if self.signed {
                i128::from(v as i64)
            } else {
                i128::from(v)
            }
        } else if self.signed {
            i128::from(lo as i32)
        } else {
            i128::from(lo)
        };
        Some(EnumValue {
            name: self.btf.str_at(word(rec, 0, be)).unwrap_or(""),
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.records.len() / if self.wide { 12 } else { 8 };
        (n, Some(n))
    }

    /// Skips `n` values without decoding them (no name lookups).
    fn nth(&mut self, n: usize) -> Option<EnumValue<'a>> {
        let step = if self.wide { 12 } else { 8 };
        let skip = n.saturating_mul(step).min(self.records.len());
        self.records = &self.records[skip..];
        self.next()
    }
}

impl ExactSizeIterator for EnumValues<'_> {}

impl fmt::Debug for EnumValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// A `FUNC`: a named function whose signature is the `FUNC_PROTO` `proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Func {
    /// Its `FUNC_PROTO`.
    pub proto: TypeId,
    /// Static, global or extern.
    pub linkage: Linkage,
}

/// A `FUNC_PROTO`: return type and parameters.
#[derive(Clone, Copy)]
pub struct FuncProto<'a> {
    /// Return type (0 for `void`).
    pub ret: TypeId,
    /// The parameter list ends with `...`.
    pub variadic: bool,
    params: Params<'a>,
}

impl<'a> FuncProto<'a> {
    /// The named parameters (without the `...` of a variadic function).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
}

impl fmt::Debug for FuncProto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FuncProto")
            .field("ret", &self.ret)
            .field("variadic", &self.variadic)
            .field("params", &self.params)
            .finish()
    }
}

/// One function parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Its name; empty in prototypes of function pointers.
    pub name: &'a str,
    /// Its type.
    pub ty: TypeId,
}

/// Iterator over a prototype's parameters.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    btf: &'a BtfTypes,
    records: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let (rec, rest) = self.records.split_at_checked(8)?;
        self.records = rest;
        let be = self.btf.big_endian;
        Some(Param {
            name: self.btf.str_at(word(rec, 0, be)).unwrap_or(""),
            ty: word(rec, 4, be),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.records.len() / 8;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Params<'_> {}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// A `VAR`: a global variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// Its type.
    pub ty: TypeId,
    /// Static, global or extern.
    pub linkage: Linkage,
}

/// A `DATASEC`: a section and the variables in it.
#[derive(Clone, Copy)]
pub struct Datasec<'a> {
    /// Section size in bytes.
    pub size: u32,
    vars: SecVars<'a>,
}

impl<'a> Datasec<'a> {
    /// The variables in the section.
    pub fn vars(&self) -> SecVars<'a> {
        self.vars
    }
}

impl fmt::Debug for Datasec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datasec")
            .field("size", &self.size)
            .field("vars", &self.vars)
            .finish()
    }
}

/// One variable of a data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecVar {
    /// The `VAR` type.
    pub ty: TypeId,
    /// Offset in the section, in bytes.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Iterator over a data section's variables.
#[derive(Clone, Copy)]
pub struct SecVars<'a> {
    big_endian: bool,
    records: &'a [u8],
}

impl Iterator for SecVars<'_> {
    type Item = SecVar;

    fn next(&mut self) -> Option<SecVar> {
        let (rec, rest) = self.records.split_at_checked(12)?;
        self.records = rest;
        let be = self.big_endian;
        Some(SecVar {
            ty: word(rec, 0, be),
            offset: word(rec, 4, be),
            size: word(rec, 8, be),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.records.len() / 12;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SecVars<'_> {}

impl fmt::Debug for SecVars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// A `DECL_TAG`: the type's name is the tag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclTag {
    /// The tagged struct, union, function, variable or typedef.
    pub target: TypeId,
    /// Which member (struct/union) or parameter (function) is tagged; `None` for the whole.
    pub component: Option<u32>,
    /// Set for `__attribute__((btf_decl_tag(...)))` emitted as a plain attribute (kind_flag).
    pub attribute: bool,
}

/// A type's kind with its kind-specific fields.
#[derive(Debug, Clone, Copy)]
pub enum TypeData<'a> {
    /// Type 0.
    Void,
    /// Integer.
    Int(Int),
    /// Pointer to the type.
    Ptr(TypeId),
    /// Array.
    Array(Array),
    /// `struct`.
    Struct(Composite<'a>),
    /// `union`.
    Union(Composite<'a>),
    /// `enum` (32-bit values).
    Enum(Enum<'a>),
    /// Forward declaration of a struct (`is_union == false`) or union.
    Fwd {
        /// It declares a union.
        is_union: bool,
    },
    /// `typedef` of the type.
    Typedef(TypeId),
    /// `volatile` type.
    Volatile(TypeId),
    /// `const` type.
    Const(TypeId),
    /// `restrict` type.
    Restrict(TypeId),
    /// Function.
    Func(Func),
    /// Function signature.
    FuncProto(FuncProto<'a>),
    /// Global variable.
    Var(Var),
    /// Data section.
    Datasec(Datasec<'a>),
    /// Floating-point type of `size` bytes.
    Float {
        /// Size in bytes.
        size: u32,
    },
    /// Declaration tag.
    DeclTag(DeclTag),
    /// Type tag (e.g. `__user`) on the type.
    TypeTag(TypeId),
    /// `enum` (64-bit values).
    Enum64(Enum<'a>),
}

/// One type: its id, name (empty when anonymous) and kind-specific data.
#[derive(Debug, Clone, Copy)]
pub struct Type<'a> {
    /// Its id.
    pub id: TypeId,
    /// Its name; empty for anonymous types, pointers and qualifiers.
    pub name: &'a str,
    /// Kind and kind-specific fields.
    pub data: TypeData<'a>,
}

impl Type<'_> {
    /// The kind, without its data.
    pub fn kind(&self) -> Kind {
        match self.data {
            TypeData::Void => Kind::Void,
            TypeData::Int(_) => Kind::Int,
            TypeData::Ptr(_) => Kind::Ptr,
            TypeData::Array(_) => Kind::Array,
            TypeData::Struct(_) => Kind::Struct,
            TypeData::Union(_) => Kind::Union,
            TypeData::Enum(_) => Kind::Enum,
            TypeData::Fwd { .. } => Kind::Fwd,
            TypeData::Typedef(_) => Kind::Typedef,
            TypeData::Volatile(_) => Kind::Volatile,
            TypeData::Const(_) => Kind::Const,
            TypeData::Restrict(_) => Kind::Restrict,
            TypeData::Func(_) => Kind::Func,
            TypeData::FuncProto(_) => Kind::FuncProto,
            TypeData::Var(_) => Kind::Var,
            TypeData::Datasec(_) => Kind::Datasec,
            TypeData::Float { .. } => Kind::Float,
            TypeData::DeclTag(_) => Kind::DeclTag,
            TypeData::TypeTag(_) => Kind::TypeTag,
            TypeData::Enum64(_) => Kind::Enum64,
        }
    }

    /// The single type this one refers to: the target of a pointer, typedef, qualifier or
    /// type tag, an array's element, a function's prototype, a variable's type, a tag's target.
    pub fn target(&self) -> Option<TypeId> {
        match self.data {
            TypeData::Ptr(t)
            | TypeData::Typedef(t)
            | TypeData::Volatile(t)
            | TypeData::Const(t)
            | TypeData::Restrict(t)
            | TypeData::TypeTag(t) => Some(t),
            TypeData::Array(a) => Some(a.elem),
            TypeData::Func(f) => Some(f.proto),
            TypeData::Var(v) => Some(v.ty),
            TypeData::DeclTag(d) => Some(d.target),
            _ => None,
        }
    }
}

/// Parsed BTF: types by id (1-based; 0 is `void`) and their names.
pub struct BtfTypes {
    pub(super) blob: Blob,
    big_endian: bool,
    /// Byte range of the string section within the blob.
    strings: (usize, usize),
    /// Blob offset of each type's record; entry 0 (void) is unused. `u32` halves the table
    /// (vmlinux has ~126k types); blobs over 4 GiB are refused.
    offsets: Table<u32>,
    /// Raw kind number of each type (0 for void), so that filtering by kind reads one byte.
    kinds: Table<u8>,
    /// (name hash, id) of every named type, sorted; built on the first name lookup so that
    /// loading for the function list does not pay for it.
    by_name: OnceLock<Vec<NameRef>>,
    /// The same for the types of one kind (indexed by kind number), built on the first lookup
    /// of that kind: finding a typedef costs ~0.3 ms for its index instead of ~5-8 ms for
    /// the index of all names.
    by_kind: [OnceLock<Table<NameRef>>; KIND_COUNT],
    /// (name hash, type id, position) of every enumerator of ENUM and ENUM64 types, sorted;
    /// built on the first [`BtfTypes::enum_value`].
    enumerators: OnceLock<Table<EnumeratorRef>>,
}

/// The lookup tables [`BtfTypes`] builds over a blob, as kept by the on-disk index cache.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tables {
    pub(crate) big_endian: bool,
    pub(crate) strings: (usize, usize),
    pub(crate) offsets: Table<u32>,
    pub(crate) kinds: Table<u8>,
    /// Per-kind name indexes (raw kind number, index).
    pub(crate) by_kind: Vec<(u8, Table<NameRef>)>,
    pub(crate) enumerators: Option<Table<EnumeratorRef>>,
}

impl fmt::Debug for BtfTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BtfTypes")
            .field("types", &self.offsets.len())
            .field("bytes", &self.blob.len())
            .field("big_endian", &self.big_endian)
            .finish()
    }
}

/// Reads a `u32` at `at`; 0 past the end (parsing has checked every read done after it).
#[inline]
fn word(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let w = at
        .checked_add(4)
        .and_then(|end| bytes.get(at..end))
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .unwrap_or([0; 4]);
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Bytes of kind-specific data after a type's 12-byte record.
fn trailing_len(kind: Kind, vlen: usize) -> usize {
    match kind {
        Kind::Int | Kind::Var | Kind::DeclTag => 4,
        Kind::Array => 12,
        Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * vlen,
        Kind::Enum | Kind::FuncProto => 8 * vlen,
        _ => 0,
    }
}

/// FNV-1a: a few ns per name, and good enough to spread identifiers over 32 bits.
fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A checked byte range `start..start+len` inside a blob of `total` bytes.
fn section(
    what: &'static str,
    start: u64,
    len: u64,
    total: usize,
) -> Result<(usize, usize), BtfError> {
    let end = start + len; // each below 2^34: cannot overflow
    if end > total as u64 {
        return Err(BtfError::Truncated {
            what,
            start,
            end,
            len: total as u64,
        });
    }
    Ok((start as usize, end as usize))
}

impl BtfTypes {
    /// Parses a raw BTF blob (copying it; see [`BtfTypes::from_vec`] to hand over a buffer).
    pub fn parse(bytes: &[u8]) -> Result<BtfTypes, BtfError> {
        BtfTypes::from_vec(bytes.to_vec())
    }

    /// Parses a raw BTF blob, keeping the buffer: records are decoded from it on access.
    pub fn from_vec(blob: Vec<u8>) -> Result<BtfTypes, BtfError> {
        BtfTypes::from_blob(Blob::Owned(blob))
    }

    /// Parses a raw BTF blob held in a buffer or a mapping.
    pub(crate) fn from_blob(blob: Blob) -> Result<BtfTypes, BtfError> {
        let b: &[u8] = &blob;
        let truncated = |what, end: usize| BtfError::Truncated {
            what,
            start: 0,
            end: end as u64,
            len: b.len() as u64,
        };
        let magic = match b.get(..2) {
            Some(m) => [m[0], m[1]],
            None => return Err(truncated("header", HEADER_LEN)),
        };
        // The magic is written in the producer's byte order, which tells us the blob's.
        let big_endian = if u16::from_le_bytes(magic) == MAGIC {
            false
        } else if u16::from_be_bytes(magic) == MAGIC {
            true
        } else {
            return Err(BtfError::BadMagic(u16::from_le_bytes(magic)));
        };
        if b.len() < HEADER_LEN {
            return Err(truncated("header", HEADER_LEN));
        }
        if u32::try_from(b.len()).is_err() {
            return Err(BtfError::Header("blob larger than 4 GiB"));
        }
        if b[2] != 1 {
            return Err(BtfError::Version(b[2]));
        }
        // No flags are defined; the kernel refuses blobs that set any.
        if b[3] != 0 {
            return Err(BtfError::Header("unknown flags"));
        }
        let w = |at| u64::from(word(b, at, big_endian));
        let hdr_len = w(4);
        let (type_off, type_len, str_off, str_len) = (w(8), w(12), w(16), w(20));
        // A longer header is a newer producer's; the fields we read keep their places.
        if hdr_len < HEADER_LEN as u64 || hdr_len > b.len() as u64 {
            return Err(BtfError::Header("header length out of range"));
        }
        if type_off % 4 != 0 || type_len % 4 != 0 {
            return Err(BtfError::Header("type section is not 4-byte aligned"));
        }
        let types = section("type section", hdr_len + type_off, type_len, b.len())?;
        let strings = section("string section", hdr_len + str_off, str_len, b.len())?;
        if types.0 < strings.1 && strings.0 < types.1 {
            return Err(BtfError::Header("type and string sections overlap"));
        }
        let strs = &b[strings.0..strings.1];
        // Offset 0 must be the empty name and every name must end inside the section.
        if strs.first() != Some(&0) {
            return Err(BtfError::Strings("does not start with an empty string"));
        }
        if strs.last() != Some(&0) {
            return Err(BtfError::Strings("last string is not NUL-terminated"));
        }
        // Only a section with multi-byte characters can have offsets inside a character.
        let ascii = strs.is_ascii();
        if !ascii && std::str::from_utf8(strs).is_err() {
            return Err(BtfError::Strings("not UTF-8"));
        }

        let type_bytes = &b[types.0..types.1];
        let (offsets, kinds) = if big_endian {
            scan_types::<true>(type_bytes, types.0, strs, ascii)?
        } else {
            scan_types::<false>(type_bytes, types.0, strs, ascii)?
        };
        let btf = BtfTypes {
            blob,
            big_endian,
            strings,
            offsets: offsets.into(),
            kinds: kinds.into(),
            by_name: OnceLock::new(),
            by_kind: std::array::from_fn(|_| OnceLock::new()),
            enumerators: OnceLock::new(),
        };
        btf.check_links()?;
        Ok(btf)
    }

    /// A blob whose tables were built (and the blob checked) earlier, for this very blob: the
    /// on-disk index cache. Indexes absent from `tables` are built on first use as usual.
    pub(crate) fn with_tables(blob: Blob, tables: Tables) -> BtfTypes {
        let by_kind: [OnceLock<Table<NameRef>>; KIND_COUNT] =
            std::array::from_fn(|_| OnceLock::new());
        for (kind, index) in tables.by_kind {
            if let Some(cell) = by_kind.get(usize::from(kind)) {
                let _ = cell.set(index);
            }
        }
        let enumerators = OnceLock::new();
        if let Some(e) = tables.enumerators {
            let _ = enumerators.set(e);
        }
        BtfTypes {
            blob,
            big_endian: tables.big_endian,
            strings: tables.strings,
            offsets: tables.offsets,
            kinds: tables.kinds,
            by_name: OnceLock::new(),
            by_kind,
            enumerators,
        }
    }

    /// Builds the indexes that checking programs use (struct, union and typedef names,
    /// enumerators) and returns them with the type tables, for the on-disk index cache.
    pub(crate) fn tables(&self) -> Tables {
        let by_kind = [Kind::Struct, Kind::Union, Kind::Typedef]
            .into_iter()
            .map(|k| (k.raw(), self.kind_index(k).to_vec().into()))
            .collect();
        Tables {
            big_endian: self.big_endian,
            strings: self.strings,
            offsets: self.offsets.to_vec().into(),
            kinds: self.kinds.to_vec().into(),
            by_kind,
            enumerators: Some(self.enumerator_index().to_vec().into()),
        }
    }

    /// Number of type ids, including 0 (`void`): valid ids are `0..len()`.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the blob declares no types (only `void` exists).
    pub fn is_empty(&self) -> bool {
        self.offsets.len() <= 1
    }

    /// The string at offset `off` of the string section.
    pub fn str_at(&self, off: u32) -> Option<&str> {
        let strs = self.blob.get(self.strings.0..self.strings.1)?;
        let rest = strs.get(off as usize..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Raw header words (name_off, info, size_or_type) and the blob offset of type `id`.
    #[inline]
    fn raw(&self, id: TypeId) -> Option<(u32, u32, u32, usize)> {
        let at = *self.offsets.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        let be = self.big_endian;
        Some((
            word(&self.blob, at, be),
            word(&self.blob, at + 4, be),
            word(&self.blob, at + 8, be),
            at,
        ))
    }

    /// The kind of type `id`, without decoding it; `None` past the end.
    pub fn kind_of(&self, id: TypeId) -> Option<Kind> {
        match *self.kinds.get(id as usize)? {
            0 => Some(Kind::Void),
            k => Kind::from_raw(u32::from(k)),
        }
    }

    /// The name of type `id` (empty when anonymous); `None` past the end.
    pub fn name_of(&self, id: TypeId) -> Option<&str> {
        if id == 0 {
            return Some("");
        }
        let at = *self.offsets.get(id as usize)? as usize;
        self.str_at(word(&self.blob, at, self.big_endian))
    }

    /// Type `id`, decoded.
    pub fn type_by_id(&self, id: TypeId) -> Result<Type<'_>, BtfError> {
        if id == 0 {
            return Ok(Type {
                id,
                name: "",
                data: TypeData::Void,
            });
        }
        let (name_off, info, st, at) = self.raw(id).ok_or(BtfError::NoType(id))?;
        let kind_flag = info >> 31 == 1;
        let vlen = (info & 0xffff) as usize;
        let kind = Kind::from_raw((info >> 24) & 0x1f).ok_or(BtfError::NoType(id))?;
        let start = at + 12;
        let extra = self
            .blob
            .get(start..start + trailing_len(kind, vlen))
            .ok_or(BtfError::NoType(id))?;
        let be = self.big_endian;
        let first = word(extra, 0, be);
        let members = || Members {
            btf: self,
            records: extra,
            kind_flag,
        };
        let values = |wide| Enum {
            size: st,
            signed: kind_flag,
            values: EnumValues {
                btf: self,
                records: extra,
                wide,
                signed: kind_flag,
            },
        };
        let data = match kind {
            Kind::Void => TypeData::Void,
            Kind::Int => TypeData::Int(Int {
                size: st,
                signed: first & (1 << 24) != 0,
                char: first & (2 << 24) != 0,
                bool: first & (4 << 24) != 0,
                bit_offset: (first >> 16) as u8,
                bits: first as u8,
            }),
            Kind::Ptr => TypeData::Ptr(st),
            Kind::Array => TypeData::Array(Array {
                elem: first,
                index: word(extra, 4, be),
                len: word(extra, 8, be),
            }),
            Kind::Struct => TypeData::Struct(Composite {
                size: st,
                members: members(),
            }),
            Kind::Union => TypeData::Union(Composite {
                size: st,
                members: members(),
            }),
            Kind::Enum => TypeData::Enum(values(false)),
            Kind::Enum64 => TypeData::Enum64(values(true)),
            Kind::Fwd => TypeData::Fwd {
                is_union: kind_flag,
            },
            Kind::Typedef => TypeData::Typedef(st),
            Kind::Volatile => TypeData::Volatile(st),
            Kind::Const => TypeData::Const(st),
            Kind::Restrict => TypeData::Restrict(st),
            Kind::Func => TypeData::Func(Func {
                proto: st,
                linkage: Linkage::from_raw(vlen as u32),
            }),
            Kind::FuncProto => {
                // A trailing (name 0, type 0) parameter stands for `...`.
                let variadic = vlen > 0 && extra.ends_with(&[0; 8]);
                let len = if variadic {
                    extra.len() - 8
                } else {
                    extra.len()
                };
                TypeData::FuncProto(FuncProto {
                    ret: st,
                    variadic,
                    params: Params {
                        btf: self,
                        records: &extra[..len],
                    },
                })
            }
            Kind::Var => TypeData::Var(Var {
                ty: st,
                linkage: Linkage::from_raw(first),
            }),
            Kind::Datasec => TypeData::Datasec(Datasec {
                size: st,
                vars: SecVars {
                    big_endian: be,
                    records: extra,
                },
            }),
            Kind::Float => TypeData::Float { size: st },
            Kind::DeclTag => TypeData::DeclTag(DeclTag {
                target: st,
                component: (first != u32::MAX).then_some(first),
                attribute: kind_flag,
            }),
            Kind::TypeTag => TypeData::TypeTag(st),
        };
        Ok(Type {
            id,
            name: self.str_at(name_off).unwrap_or(""),
            data,
        })
    }

    /// All types but `void`, in id order.
    pub fn iter(&self) -> impl Iterator<Item = Type<'_>> + '_ {
        (1..self.offsets.len() as u32).filter_map(|id| self.type_by_id(id).ok())
    }

    /// The (name hash, id) index, built on first use.
    fn name_index(&self) -> &[NameRef] {
        self.by_name.get_or_init(|| {
            let mut index = Vec::with_capacity(self.offsets.len());
            for id in 1..self.offsets.len() as u32 {
                match self.name_of(id) {
                    Some(name) if !name.is_empty() => index.push(NameRef {
                        hash: name_hash(name.as_bytes()),
                        id,
                    }),
                    _ => {}
                }
            }
            index.sort_unstable();
            index
        })
    }

    /// Ids of all types named `name`, of any kind, in id order.
    pub fn find_all_by_name(&self, name: &str) -> Vec<TypeId> {
        if name.is_empty() {
            return Vec::new();
        }
        let hash = name_hash(name.as_bytes());
        let index = self.name_index();
        let from = index.partition_point(|e| e.hash < hash);
        index[from..]
            .iter()
            .take_while(|e| e.hash == hash)
            .map(|e| e.id)
            .filter(|&id| self.name_of(id) == Some(name))
            .collect()
    }

    /// The (name hash, id) index of the named types of one kind, built on first use (from
    /// the index of all names when that exists already).
    fn kind_index(&self, kind: Kind) -> &[NameRef] {
        let raw = kind.raw();
        let kinds: &[u8] = &self.kinds;
        self.by_kind[usize::from(raw)].get_or_init(|| {
            let mut index: Vec<NameRef> = match self.by_name.get() {
                // Already sorted.
                Some(all) => {
                    return all
                        .iter()
                        .copied()
                        .filter(|e| kinds.get(e.id as usize) == Some(&raw))
                        .collect::<Vec<_>>()
                        .into()
                }
                None => (1..kinds.len() as u32)
                    .filter(|&id| kinds[id as usize] == raw)
                    .filter_map(|id| {
                        let name = self.name_of(id)?;
                        (!name.is_empty()).then(|| NameRef {
                            hash: name_hash(name.as_bytes()),
                            id,
                        })
                    })
                    .collect(),
            };
            index.sort_unstable();
            index.into()
        })
    }

    /// The first type of `kind` named `name` (e.g. `(Kind::Struct, "sock")`,
    /// `(Kind::Typedef, "__be16")`, `(Kind::Func, "vfs_read")`).
    pub fn find_by_name(&self, kind: Kind, name: &str) -> Option<TypeId> {
        if name.is_empty() {
            return None;
        }
        let hash = name_hash(name.as_bytes());
        let index = self.kind_index(kind);
        let from = index.partition_point(|e| e.hash < hash);
        index[from..]
            .iter()
            .take_while(|e| e.hash == hash)
            .map(|e| e.id)
            .find(|&id| self.name_of(id) == Some(name))
    }

    /// The enumerator index, built on first use: hashing only the enumerators' names (~19k
    /// in vmlinux) instead of decoding every type.
    fn enumerator_index(&self) -> &[EnumeratorRef] {
        self.enumerators.get_or_init(|| {
            let mut index = Vec::new();
            for id in 1..self.kinds.len() as u32 {
                if !matches!(self.kind_of(id), Some(Kind::Enum | Kind::Enum64)) {
                    continue;
                }
                let Ok(t) = self.type_by_id(id) else { continue };
                if let TypeData::Enum(e) | TypeData::Enum64(e) = t.data {
                    for (pos, v) in e.values().enumerate() {
                        index.push(EnumeratorRef {
                            hash: name_hash(v.name.as_bytes()),
                            id,
                            pos: pos as u32,
                        });
                    }
                }
            }
            index.sort_unstable();
            index.into()
        })
    }

    /// The value of the first enumerator named `name` (empty names included), in type id
    /// order and then declaration order, of all ENUM and ENUM64 types
    /// (e.g. `TCP_ESTABLISHED` -> 1).
    pub fn enum_value(&self, name: &str) -> Option<i128> {
        let hash = name_hash(name.as_bytes());
        let index = self.enumerator_index();
        let from = index.partition_point(|e| e.hash < hash);
        // Sorted by (hash, id, position): the first match is the first in declaration order.
        index[from..]
            .iter()
            .take_while(|e| e.hash == hash)
            .find_map(|r| {
                let v = match self.type_by_id(r.id).ok()?.data {
                    TypeData::Enum(e) | TypeData::Enum64(e) => e.values().nth(r.pos as usize)?,
                    _ => return None,
                };
                (v.name == name).then_some(v.value)
            })
    }

    /// Follows typedefs, qualifiers and type tags to the type they stand for
    /// (`__be16` -> `unsigned short`, `const struct sock` -> `struct sock`).
    pub fn resolve(&self, id: TypeId) -> Result<TypeId, BtfError> {
        self.follow(id, true)
    }

    /// Follows qualifiers and type tags, but not typedefs (`const size_t` -> `size_t`).
    pub fn skip_qualifiers(&self, id: TypeId) -> Result<TypeId, BtfError> {
        self.follow(id, false)
    }

    fn follow(&self, mut id: TypeId, typedefs: bool) -> Result<TypeId, BtfError> {
        for _ in 0..MAX_CHAIN {
            let t = self.type_by_id(id)?;
            id = match t.data {
                TypeData::Typedef(next) if typedefs => next,
                TypeData::Const(next)
                | TypeData::Volatile(next)
                | TypeData::Restrict(next)
                | TypeData::TypeTag(next) => next,
                _ => return Ok(id),
            };
        }
        Err(BtfError::Loop(id))
    }

    /// Size in bytes of type `id`, through typedefs and qualifiers. Pointers are as wide as
    /// this program's (BTF does not record it; kernel BTF describes the running kernel).
    pub fn size_of(&self, id: TypeId) -> Result<u64, BtfError> {
        let mut count = 1u64;
        let mut id = id;
        for _ in 0..MAX_CHAIN {
            let t = self.type_by_id(id)?;
            let size = match t.data {
                TypeData::Int(Int { size, .. })
                | TypeData::Enum(Enum { size, .. })
                | TypeData::Enum64(Enum { size, .. })
                | TypeData::Struct(Composite { size, .. })
                | TypeData::Union(Composite { size, .. })
                | TypeData::Datasec(Datasec { size, .. })
                | TypeData::Float { size } => u64::from(size),
                TypeData::Ptr(_) => std::mem::size_of::<usize>() as u64,
                TypeData::Array(a) => {
                    count = count.saturating_mul(u64::from(a.len));
                    id = a.elem;
                    continue;
                }
                TypeData::Typedef(next)
                | TypeData::Const(next)
                | TypeData::Volatile(next)
                | TypeData::Restrict(next)
                | TypeData::TypeTag(next)
                | TypeData::Var(Var { ty: next, .. }) => {
                    id = next;
                    continue;
                }
                _ => return Err(BtfError::NoSize(id)),
            };
            return Ok(size.saturating_mul(count));
        }
        Err(BtfError::Loop(id))
    }

    /// Member `name` of the struct or union `id` (through typedefs and qualifiers), also
    /// looking inside anonymous struct/union members as C does; the offset returned is from
    /// the start of the outer type. `Ok(None)` when there is no such member.
    pub fn member_by_name(&self, id: TypeId, name: &str) -> Result<Option<Member<'_>>, BtfError> {
        self.member_in(id, name, 0)
    }

    fn member_in(
        &self,
        id: TypeId,
        name: &str,
        depth: usize,
    ) -> Result<Option<Member<'_>>, BtfError> {
        if depth > MAX_CHAIN {
            return Err(BtfError::Loop(id));
        }
        let id = self.resolve(id)?;
        let members = match self.type_by_id(id)?.data {
            TypeData::Struct(c) | TypeData::Union(c) => c.members(),
            _ => {
                return Err(bad(
                    id as usize,
                    format!("{} has no members", self.kind_of(id).unwrap_or(Kind::Void)),
                ))
            }
        };
        for m in members {
            if m.name == name {
                return Ok(Some(m));
            }
            if m.name.is_empty() {
                let inner = self.resolve(m.ty)?;
                if matches!(self.kind_of(inner), Some(Kind::Struct | Kind::Union)) {
                    if let Some(mut found) = self.member_in(inner, name, depth + 1)? {
                        found.bit_offset = found.bit_offset.saturating_add(m.bit_offset);
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Checks what the scan could not: `FUNC`s point at prototypes, and following single
    /// references (pointers, typedefs, qualifiers, arrays...) always ends.
    fn check_links(&self) -> Result<(), BtfError> {
        const FRESH: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let kinds: &[u8] = &self.kinds;
        let is_chain = |id: u32| {
            kinds
                .get(id as usize)
                .is_some_and(|&k| CHAIN_KINDS >> k & 1 == 1)
        };
        // The one type a chain kind refers to (an array's element is in its trailing data).
        let next = |id: u32| {
            let at = *self.offsets.get(id as usize).unwrap_or(&0) as usize;
            let at = if kinds[id as usize] == ARRAY_KIND {
                at + 12
            } else {
                at + 8
            };
            word(&self.blob, at, self.big_endian)
        };
        let mut state = vec![FRESH; kinds.len()];
        let mut path = Vec::new();
        for start in 1..kinds.len() as u32 {
            let kind = kinds[start as usize];
            if kind == FUNC_KIND && self.kind_of(next(start)) != Some(Kind::FuncProto) {
                return Err(bad(start as usize, "FUNC does not point at a FUNC_PROTO"));
            }
            // Walk the chain from here until it leaves chain kinds or meets a checked type.
            let mut id = start;
            while is_chain(id) && state[id as usize] != DONE {
                if state[id as usize] == ON_PATH {
                    return Err(BtfError::Loop(id));
                }
                state[id as usize] = ON_PATH;
                path.push(id);
                id = next(id);
            }
            for id in path.drain(..) {
                state[id as usize] = DONE;
            }
        }
        Ok(())
    }
}

/// Raw kind numbers of PTR, ARRAY, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, VAR, DECL_TAG and
/// TYPE_TAG as a bit set: the kinds that refer to exactly one type, so following them must end.
const CHAIN_KINDS: u32 =
    1 << 2 | 1 << 3 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12 | 1 << 14 | 1 << 17 | 1 << 18;
/// Kind numbers are 0 (`void`) to 19 (`ENUM64`).
const KIND_COUNT: usize = 20;
/// Raw kind number of `ARRAY`.
const ARRAY_KIND: u8 = 3;

/// Raw kind number of `FUNC`.
const FUNC_KIND: u8 = 12;

/// Reads a `u32` in the byte order `BE`; 0 past the end of `b`.
#[inline(always)]
fn rd<const BE: bool>(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[x0, x1, x2, x3]) if BE => u32::from_be_bytes([x0, x1, x2, x3]),
        Some(&[x0, x1, x2, x3]) => u32::from_le_bytes([x0, x1, x2, x3]),
        _ => 0,
    }
}

/// One pass over the type section (at `base` in the blob): the blob offset and kind of every
/// record, after checking that each record fits, has a known kind, and names only strings and
/// types that exist. Generic over byte order so that the hot loop does not test it per read.
fn scan_types<const BE: bool>(
    types: &[u8],
    base: usize,
    strs: &[u8],
    ascii: bool,
) -> Result<(Vec<u32>, Vec<u8>), BtfError> {
    // Kernel BTF averages ~25 bytes a type; reserving for that avoids regrowing.
    let guess = types.len() / 24 + 1;
    let mut offsets = Vec::with_capacity(guess);
    let mut kinds = Vec::with_capacity(guess);
    offsets.push(0);
    kinds.push(0);
    // Largest type id and string offset referenced, checked once at the end because
    // references may point forward.
    let mut max_ref = 0u32;
    let mut max_name = 0u32;
    // In a non-ASCII section an offset can land inside a character.
    let mut split_char = false;
    let mut name = |off: u32| {
        max_name = max_name.max(off);
        if !ascii && strs.get(off as usize).is_some_and(|&c| c & 0xc0 == 0x80) {
            split_char = true;
        }
    };
    let mut rest = types;
    let mut pos = base;
    while !rest.is_empty() {
        let id = offsets.len();
        let Some((head, after)) = rest.split_at_checked(12) else {
            return Err(bad(id, "record crosses the end of the type section"));
        };
        let (name_off, info, st) = (rd::<BE>(head, 0), rd::<BE>(head, 4), rd::<BE>(head, 8));
        let raw_kind = (info >> 24) & 0x1f;
        let Some(kind) = Kind::from_raw(raw_kind) else {
            return Err(bad(id, format!("unknown kind {raw_kind}")));
        };
        // Bits 16-23 and 29-30 of info are unused and must be zero, as the kernel requires.
        if info & 0x60ff_0000 != 0 {
            return Err(bad(id, "unused info bits are set"));
        }
        let vlen = (info & 0xffff) as usize;
        let counted = matches!(
            kind,
            Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::FuncProto
                | Kind::Datasec
                | Kind::Func // vlen is the linkage
        );
        if vlen != 0 && !counted {
            return Err(bad(id, format!("vlen {vlen} on a {kind} type")));
        }
        let Some((extra, after)) = after.split_at_checked(trailing_len(kind, vlen)) else {
            return Err(bad(id, "record crosses the end of the type section"));
        };
        name(name_off);
        match kind {
            Kind::Int => {
                let data = rd::<BE>(extra, 0);
                let (bits, off) = (data & 0xff, (data >> 16) & 0xff);
                if !matches!(st, 1 | 2 | 4 | 8 | 16) || bits + off > st * 8 {
                    return Err(bad(id, "INT with impossible size or bits"));
                }
            }
            Kind::Ptr
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::TypeTag
            | Kind::Func
            | Kind::Var
            | Kind::DeclTag => max_ref = max_ref.max(st),
            Kind::Array => max_ref = max_ref.max(rd::<BE>(extra, 0)).max(rd::<BE>(extra, 4)),
            Kind::Struct | Kind::Union => {
                for m in extra.chunks_exact(12) {
                    name(rd::<BE>(m, 0));
                    max_ref = max_ref.max(rd::<BE>(m, 4));
                }
            }
            Kind::Enum => extra.chunks_exact(8).for_each(|v| name(rd::<BE>(v, 0))),
            Kind::Enum64 => extra.chunks_exact(12).for_each(|v| name(rd::<BE>(v, 0))),
            Kind::FuncProto => {
                max_ref = max_ref.max(st);
                for (i, p) in extra.chunks_exact(8).enumerate() {
                    let (pname, pty) = (rd::<BE>(p, 0), rd::<BE>(p, 4));
                    name(pname);
                    max_ref = max_ref.max(pty);
                    // `void` as a parameter type only means `...`, and only last.
                    if pty == 0 && (pname != 0 || i + 1 != vlen) {
                        return Err(bad(id, format!("parameter {i} has type void")));
                    }
                }
            }
            Kind::Datasec => {
                for v in extra.chunks_exact(12) {
                    max_ref = max_ref.max(rd::<BE>(v, 0));
                }
            }
            Kind::Void | Kind::Fwd | Kind::Float => {}
        }
        offsets.push(pos as u32);
        kinds.push(raw_kind as u8);
        pos += 12 + extra.len();
        rest = after;
    }
    if max_name as usize >= strs.len() {
        return Err(BtfError::Strings("a name offset is past the end"));
    }
    if split_char {
        return Err(BtfError::Strings("a name offset is inside a character"));
    }
    if max_ref as usize >= offsets.len() {
        return Err(BtfError::BadType {
            id: max_ref,
            reason: format!("is referenced, but only {} types exist", offsets.len()),
        });
    }
    Ok((offsets, kinds))
}
