//! bpftrace's integer types and the rules both evaluators share (the
//! symbolic one in `exec` and the concrete one in `eval`): literal types,
//! binary-operator widths and signedness, casts, ternaries, field and builtin
//! types. Read from bpftrace's own semantic analyser and LLVM code generator
//! (0.17 and 0.22); where the two versions differ, [`Semantics`] says which.

use kgent_frontend::ast::{BinaryOp, ProbeKind};
use kgent_frontend::facts::{FieldInfo, KernelFacts, RecordRef};
use serde::{Deserialize, Serialize};

/// An integer type: its width in bits (8, 16, 32 or 64) and signedness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IntTy {
    pub bits: u32,
    pub signed: bool,
}

impl IntTy {
    pub const U8: IntTy = IntTy::new(8, false);
    pub const U16: IntTy = IntTy::new(16, false);
    pub const U32: IntTy = IntTy::new(32, false);
    pub const U64: IntTy = IntTy::new(64, false);
    pub const I8: IntTy = IntTy::new(8, true);
    pub const I16: IntTy = IntTy::new(16, true);
    pub const I32: IntTy = IntTy::new(32, true);
    pub const I64: IntTy = IntTy::new(64, true);

    pub const fn new(bits: u32, signed: bool) -> IntTy {
        IntTy { bits, signed }
    }

    /// All ones in the low `bits` bits.
    pub fn mask(self) -> u64 {
        if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// bpftrace's spelling (`uint16`, `int64`).
    pub fn name(self) -> String {
        format!("{}int{}", if self.signed { "" } else { "u" }, self.bits)
    }

    /// The same width, unsigned.
    pub fn unsigned(self) -> IntTy {
        IntTy::new(self.bits, false)
    }

    /// `value` (its low `bits` bits) extended to 64 bits by this type's signedness.
    pub fn ext64(self, value: u64) -> u64 {
        let v = value & self.mask();
        if self.signed && self.bits < 64 && (v >> (self.bits - 1)) & 1 == 1 {
            v | !self.mask()
        } else {
            v
        }
    }

    /// `value` as a number: signed types as `i64`, unsigned as `u64`, both in `i128`.
    pub fn numeric(self, value: u64) -> i128 {
        let v = self.ext64(value);
        if self.signed {
            i128::from(v as i64)
        } else {
            i128::from(v)
        }
    }
}

/// The type of what a binary integer operator computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinTy {
    /// Both operands are extended (each by its own signedness) to this width
    /// and the operation happens at it.
    pub width: u32,
    /// The result's type (comparisons and `&&`/`||` give 0 or 1 of it).
    pub result: IntTy,
    /// `<`, `<=`, `>`, `>=` compare signed: only when both operands are signed.
    pub signed_compare: bool,
}

/// Which bpftrace's integer rules apply. 0.17 to 0.21 promote every binary
/// operation to 64 bits; 0.22 computes at the wider operand's width, types
/// literals above `i32::MAX` as `uint64`, and types `pid`/`tid` as `uint32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semantics {
    pub version: (u32, u32),
}

impl Semantics {
    pub fn new(version: (u32, u32)) -> Semantics {
        Semantics { version }
    }

    fn sized(self) -> bool {
        self.version >= (0, 22)
    }

    /// The type of an integer literal (negative literals are `-` applied to one).
    pub fn literal(self, value: u64) -> IntTy {
        if self.sized() && value > i32::MAX as u64 {
            IntTy::U64
        } else {
            IntTy::I64
        }
    }

    /// Width and result type of `l op r` (`op` not `&&`/`||` short-circuit
    /// aside: those use the same rule for their 0/1 result).
    pub fn binop(self, op: BinaryOp, l: IntTy, r: IntTy) -> BinTy {
        let width = if self.sized() { l.bits.max(r.bits) } else { 64 };
        let signed_both = l.signed && r.signed;
        // bpftrace: a shift keeps the left operand's signedness (the shift itself
        // is always logical, see `exec`/`eval`).
        let signed = match op {
            BinaryOp::Shl | BinaryOp::Shr => l.signed,
            _ => signed_both,
        };
        BinTy {
            width,
            result: IntTy::new(width, signed),
            signed_compare: signed_both,
        }
    }

    /// The type of `c ? l : r` with integer branches: both branches are cast
    /// to it. 0.17 makes it 64 bits with the left branch's signedness.
    pub fn ternary(self, l: IntTy, _r: IntTy) -> IntTy {
        if self.sized() {
            l
        } else {
            IntTy::new(64, l.signed)
        }
    }

    /// `pid` and `tid`: 32-bit values, typed `uint64` before 0.22.
    pub fn pid_ty(self) -> IntTy {
        if self.sized() {
            IntTy::U32
        } else {
            IntTy::U64
        }
    }
}

/// The integer type a cast names (`(uint8)x`), if it is one.
pub fn cast_int_ty(name: &str) -> Option<IntTy> {
    Some(match name {
        "int8" => IntTy::I8,
        "int16" => IntTy::I16,
        "int32" => IntTy::I32,
        "int64" => IntTy::I64,
        "uint8" | "bool" => IntTy::U8,
        "uint16" => IntTy::U16,
        "uint32" => IntTy::U32,
        "uint64" => IntTy::U64,
        _ => return None,
    })
}

/// What a pointer points to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pointee {
    Record(RecordRef),
    Int(IntTy),
    /// `char *`: a string to `str()`.
    Char,
    Unknown,
}

/// The type of a value the evaluators handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValTy {
    Int(IntTy),
    /// A string (`comm`, `str()`, `char[N]` fields).
    Str,
    /// A pointer: arithmetic and comparisons treat it as `uint64`.
    Ptr(Pointee),
    /// A struct or union by value (a member of another one).
    Record(RecordRef),
    /// An array of integers (`__u8[4]`).
    Array {
        elem: IntTy,
        len: u64,
    },
    /// Something kept only as a description (stacks, tuples, buffers).
    Opaque(&'static str),
}

impl ValTy {
    pub fn as_int(&self) -> Option<IntTy> {
        match self {
            ValTy::Int(t) => Some(*t),
            ValTy::Ptr(_) => Some(IntTy::U64),
            _ => None,
        }
    }
}

/// The natural width and signedness of a C integer type name, after
/// qualifiers, for the names that are not typedefs.
fn c_base_int(name: &str) -> Option<IntTy> {
    Some(match name {
        "char" | "signed char" | "s8" | "__s8" | "int8_t" => IntTy::I8,
        "unsigned char" | "u8" | "__u8" | "uint8_t" | "bool" | "_Bool" => IntTy::U8,
        "short" | "short int" | "signed short" | "short signed int" | "s16" | "__s16"
        | "int16_t" => IntTy::I16,
        "unsigned short" | "short unsigned int" | "unsigned short int" | "u16" | "__u16"
        | "uint16_t" | "__be16" | "__le16" | "__sum16" => IntTy::U16,
        "int" | "signed int" | "signed" | "s32" | "__s32" | "int32_t" => IntTy::I32,
        "unsigned int" | "unsigned" | "u32" | "__u32" | "uint32_t" | "__be32" | "__le32"
        | "__wsum" => IntTy::U32,
        "long" | "long int" | "signed long" | "long signed int" | "long long" | "long long int"
        | "s64" | "__s64" | "int64_t" | "ssize_t" | "loff_t" => IntTy::I64,
        "unsigned long"
        | "long unsigned int"
        | "unsigned long int"
        | "unsigned long long"
        | "long long unsigned int"
        | "u64"
        | "__u64"
        | "uint64_t"
        | "size_t"
        | "__be64"
        | "__le64" => IntTy::U64,
        _ => return None,
    })
}

/// `const volatile T` -> `T`.
fn strip_qualifiers(c_type: &str) -> &str {
    let mut t = c_type.trim();
    loop {
        let before = t;
        for q in [
            "const ",
            "volatile ",
            "__attribute__((btf_type_tag(\"user\"))) ",
        ] {
            if let Some(rest) = t.strip_prefix(q) {
                t = rest.trim_start();
            }
        }
        if t == before {
            return t;
        }
    }
}

/// The integer type of a field read as bpftrace 0.17 reads it: tracepoint
/// formats spell `int` for 8-byte syscall arguments, which bpftrace turns into
/// `s64` (and `unsigned int`/`pid_t`/`uid_t`/`gid_t` into `u64`,
/// `TracepointFormatParser::adjust_integer_types`); otherwise the C type's
/// own width and signedness after typedefs, and the fact's size and
/// signedness when the type is not known.
pub fn field_int_ty(c_type: &str, size: u64, signed: bool, facts: &dyn KernelFacts) -> IntTy {
    let t = strip_qualifiers(c_type);
    if size == 8 {
        if t == "int" {
            return IntTy::I64;
        }
        if matches!(
            t,
            "unsigned int" | "unsigned" | "u32" | "pid_t" | "uid_t" | "gid_t"
        ) {
            return IntTy::U64;
        }
    }
    let mut name = t.to_string();
    for _ in 0..8 {
        if let Some(base) = c_base_int(&name) {
            return base;
        }
        if name.starts_with("enum ") {
            break;
        }
        match facts.typedef_target(&name) {
            Some(next) => name = strip_qualifiers(&next).to_string(),
            None => break,
        }
    }
    match size {
        1 | 2 | 4 | 8 => IntTy::new(size as u32 * 8, signed),
        _ => IntTy::new(64, signed),
    }
}

/// The value type of a field (tracepoint argument, function parameter, struct member).
pub fn field_ty(f: &FieldInfo, facts: &dyn KernelFacts) -> ValTy {
    let t = strip_qualifiers(&f.c_type);
    if t.starts_with("__data_loc") {
        return ValTy::Str;
    }
    if let Some(open) = t.find('[') {
        let elem = strip_qualifiers(t[..open].trim());
        let len = t[open + 1..]
            .trim_end_matches(']')
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
        if matches!(elem, "char" | "signed char") {
            return ValTy::Str;
        }
        let elem_size = f.size.checked_div(len).unwrap_or(0);
        let elem_ty = field_int_ty(elem, elem_size, f.signed, facts);
        return ValTy::Array { elem: elem_ty, len };
    }
    if f.pointer || t.ends_with('*') {
        let pointee = match &f.record {
            Some(r) => Pointee::Record(r.clone()),
            None => {
                let inner = strip_qualifiers(t.trim_end_matches('*').trim());
                if matches!(inner, "char" | "unsigned char" | "signed char") {
                    Pointee::Char
                } else {
                    match c_base_int(inner) {
                        Some(it) if t.matches('*').count() == 1 => Pointee::Int(it),
                        _ => Pointee::Unknown,
                    }
                }
            }
        };
        return ValTy::Ptr(pointee);
    }
    if let Some(r) = &f.record {
        return ValTy::Record(r.clone());
    }
    if t.starts_with("struct ") || t.starts_with("union ") {
        return ValTy::Opaque("record");
    }
    ValTy::Int(field_int_ty(t, f.size, f.signed, facts))
}

/// How a builtin variable is modelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltinModel {
    /// An integer input of type `ty` whose value has `value_bits` significant
    /// bits (the rest zero: `pid` is 32 bits wide, typed `uint64` before 0.22).
    /// One value per probe firing, `nsecs` and `rand` included: the reads of
    /// one firing are taken as simultaneous.
    Int { ty: IntTy, value_bits: u32 },
    /// A string input, one per firing.
    Str,
    /// The attach point's own name (`probe`): a known string.
    ProbeName,
    /// A pointer input, one per firing.
    Ptr(Pointee),
    /// `args`: its fields are the inputs.
    Args,
    /// Something not modelled as a value (stacks).
    Opaque(&'static str),
}

/// How `name` is modelled, or `None` when it is not a builtin we know.
/// Widths follow bpftrace: `pid`, `tid`, `uid`, `gid`, `cpu`, `numaid`,
/// `cpid` and `rand` are 32-bit values (`pid`/`tid` typed `uint32` from
/// 0.22, `uint64` before; the others `uint64`); `nsecs`, `elapsed`,
/// `jiffies`, `cgroup`, `argN`, `sargN`, `retval` (k/uretprobe) are `uint64`.
pub fn builtin_model(name: &str, sem: Semantics) -> Option<BuiltinModel> {
    let int = |ty: IntTy, value_bits: u32| BuiltinModel::Int { ty, value_bits };
    Some(match name {
        "pid" | "tid" => int(sem.pid_ty(), 32),
        "uid" | "gid" | "cpu" | "numaid" | "cpid" => int(IntTy::U64, 32),
        "rand" => int(IntTy::U64, 32),
        "nsecs" | "elapsed" | "jiffies" => int(IntTy::U64, 64),
        "cgroup" | "ncpus" | "retval" => int(IntTy::U64, 64),
        "usermode" => int(IntTy::U64, 1),
        "comm" | "username" | "func" => BuiltinModel::Str,
        "probe" => BuiltinModel::ProbeName,
        "curtask" => BuiltinModel::Ptr(Pointee::Record(RecordRef::new(
            kgent_frontend::RecordKind::Struct,
            "task_struct",
        ))),
        "ctx" => BuiltinModel::Ptr(Pointee::Unknown),
        "kstack" | "ustack" => BuiltinModel::Opaque("stack"),
        "args" => BuiltinModel::Args,
        _ => {
            let digits = name
                .strip_prefix("sarg")
                .or_else(|| name.strip_prefix("arg"))?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            int(IntTy::U64, 64)
        }
    })
}

/// Whether `kind` has `retval` as a plain `uint64` (return probes of
/// kernel and user functions).
pub fn retval_is_u64(kind: Option<ProbeKind>) -> bool {
    matches!(
        kind,
        Some(ProbeKind::Kretprobe | ProbeKind::Uretprobe) | None
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_frontend::StaticFacts;

    #[test]
    fn ext64_sign_extends_only_signed_types() {
        assert_eq!(IntTy::I8.ext64(0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(IntTy::U8.ext64(0x80), 0x80);
        assert_eq!(IntTy::I32.numeric(0xffff_ffff), -1);
        assert_eq!(IntTy::U32.numeric(0xffff_ffff), 4_294_967_295);
    }

    #[test]
    fn binop_rules_follow_the_version() {
        let old = Semantics::new((0, 17));
        let new = Semantics::new((0, 22));
        let t = old.binop(BinaryOp::Add, IntTy::U16, IntTy::U16);
        assert_eq!((t.width, t.result), (64, IntTy::U64));
        let t = new.binop(BinaryOp::Add, IntTy::U16, IntTy::U16);
        assert_eq!((t.width, t.result), (16, IntTy::U16));
        let t = old.binop(BinaryOp::Lt, IntTy::I64, IntTy::U64);
        assert!(!t.signed_compare);
        let t = old.binop(BinaryOp::Shr, IntTy::I64, IntTy::U64);
        assert!(t.result.signed);
        assert_eq!(new.literal(1 << 40), IntTy::U64);
        assert_eq!(old.literal(1 << 40), IntTy::I64);
    }

    #[test]
    fn field_types_follow_bpftrace() {
        let mut facts = StaticFacts::default();
        facts
            .typedefs
            .insert("umode_t".into(), "short unsigned int".into());
        let f = |c: &str, size: u64, signed: bool| FieldInfo {
            name: "x".into(),
            c_type: c.into(),
            size,
            signed,
            pointer: false,
            byte_order: Default::default(),
            record: None,
        };
        // Syscall tracepoints: `int` arguments are 8 bytes, read as s64.
        assert_eq!(
            field_ty(&f("int", 8, false), &facts),
            ValTy::Int(IntTy::I64)
        );
        assert_eq!(
            field_ty(&f("pid_t", 8, false), &facts),
            ValTy::Int(IntTy::U64)
        );
        assert_eq!(
            field_ty(&f("pid_t", 4, true), &facts),
            ValTy::Int(IntTy::I32)
        );
        assert_eq!(
            field_ty(&f("__u16", 2, false), &facts),
            ValTy::Int(IntTy::U16)
        );
        assert_eq!(
            field_ty(&f("umode_t", 8, false), &facts),
            ValTy::Int(IntTy::U16)
        );
        assert_eq!(field_ty(&f("char[16]", 16, false), &facts), ValTy::Str);
        assert_eq!(
            field_ty(&f("__u8[4]", 4, false), &facts),
            ValTy::Array {
                elem: IntTy::U8,
                len: 4
            }
        );
        assert_eq!(
            field_ty(&f("enum skb_drop_reason", 4, false), &facts),
            ValTy::Int(IntTy::U32)
        );
    }
}
