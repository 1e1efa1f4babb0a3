//! C spellings of BTF types (`const char *`, `struct sock *`, `int (*)(int)`) and the
//! size/signedness of probe arguments.

use super::reader::{BtfTypes, FuncProto, Int, TypeData, TypeId};

/// Type chains deeper than this are treated as malformed (real kernel chains are < 10).
const MAX_DEPTH: usize = 24;

/// Most types visited while spelling one type. Prototypes branch (every parameter is spelled),
/// so malformed BTF could make a depth-bounded walk exponential; real types need < 100.
const MAX_VISITS: usize = 4096;

impl BtfTypes {
    /// C spelling of type `id`, as a declaration without a name: `unsigned int`,
    /// `struct sock *`, `const char *`, `char * const`, `__u8[4]`, `void (*)(int, ...)`.
    /// Typedefs keep their name (`size_t`); `restrict` and type tags (`__user`) are left out.
    /// Unknown ids and malformed chains read as `?`.
    pub fn type_name(&self, id: TypeId) -> String {
        let mut budget = MAX_VISITS;
        self.spell(id, 0, &mut budget)
    }

    fn spell(&self, id: TypeId, depth: usize, budget: &mut usize) -> String {
        if depth > MAX_DEPTH || *budget == 0 {
            return "?".into();
        }
        *budget -= 1;
        let Ok(ty) = self.type_by_id(id) else {
            return "?".into();
        };
        let name = ty.name;
        let inner = |t: TypeId, budget: &mut usize| self.spell(t, depth + 1, budget);
        let tagged = |kw: &str| {
            if name.is_empty() {
                format!("{kw} (anon)")
            } else {
                format!("{kw} {name}")
            }
        };
        // `const`/`volatile` bind to the pointer itself when the inner type is a pointer.
        let qualified = |kw: &str, s: String| {
            if s.ends_with('*') {
                format!("{s} {kw}")
            } else {
                format!("{kw} {s}")
            }
        };
        match ty.data {
            TypeData::Void => "void".into(),
            TypeData::Int(_)
            | TypeData::Float { .. }
            | TypeData::Typedef(_)
            | TypeData::Func(_)
            | TypeData::Var(_)
            | TypeData::Datasec(_) => name.into(),
            TypeData::Struct(_) => tagged("struct"),
            TypeData::Union(_) => tagged("union"),
            TypeData::Enum(_) | TypeData::Enum64(_) => tagged("enum"),
            TypeData::Fwd { is_union } => tagged(if is_union { "union" } else { "struct" }),
            TypeData::Ptr(target) => {
                // A pointer to a prototype is spelled as a function pointer.
                if let Ok(TypeData::FuncProto(fp)) = self.type_by_id(target).map(|t| t.data) {
                    return self.spell_proto(&fp, "(*)", depth, budget);
                }
                let s = inner(target, budget);
                if s.ends_with('*') {
                    format!("{s}*")
                } else {
                    format!("{s} *")
                }
            }
            TypeData::Const(t) => qualified("const", inner(t, budget)),
            TypeData::Volatile(t) => qualified("volatile", inner(t, budget)),
            // `restrict` and type tags (e.g. __user) do not change what a probe can read.
            TypeData::Restrict(t) | TypeData::TypeTag(t) => inner(t, budget),
            TypeData::DeclTag(d) => inner(d.target, budget),
            TypeData::Array(a) => format!("{}[{}]", inner(a.elem, budget), a.len),
            TypeData::FuncProto(fp) => self.spell_proto(&fp, "", depth, budget),
        }
    }

    fn spell_proto(
        &self,
        fp: &FuncProto<'_>,
        declarator: &str,
        depth: usize,
        budget: &mut usize,
    ) -> String {
        let ret = self.spell(fp.ret, depth + 1, budget);
        let mut params: Vec<String> = fp
            .params()
            .map(|p| self.spell(p.ty, depth + 1, budget))
            .collect();
        if fp.variadic {
            params.push("...".into());
        }
        let params = if params.is_empty() {
            "void".to_string()
        } else {
            params.join(", ")
        };
        if declarator.is_empty() {
            format!("{ret} ({params})")
        } else {
            format!("{ret} {declarator}({params})")
        }
    }

    /// Size in bytes and signedness of type `id` as a probe argument, through typedefs and
    /// qualifiers; `(0, false)` for what has no size (void, functions, forward declarations).
    pub(crate) fn size_and_sign(&self, id: TypeId) -> (usize, bool) {
        let mut id = id;
        let mut count = 1usize;
        for _ in 0..=MAX_DEPTH {
            let Ok(ty) = self.type_by_id(id) else {
                return (0, false);
            };
            let (size, signed) = match ty.data {
                TypeData::Int(Int { size, signed, .. }) => (size as usize, signed),
                TypeData::Enum(e) | TypeData::Enum64(e) => (e.size as usize, e.signed),
                TypeData::Float { size } => (size as usize, true),
                TypeData::Struct(c) | TypeData::Union(c) => (c.size as usize, false),
                // BTF does not record pointer width; kernel BTF is produced for the running
                // (64-bit) kernel, whose pointers are the size of ours.
                TypeData::Ptr(_) => (std::mem::size_of::<usize>(), false),
                TypeData::Array(a) => {
                    count = count.saturating_mul(a.len as usize);
                    id = a.elem;
                    continue;
                }
                TypeData::Typedef(t)
                | TypeData::Const(t)
                | TypeData::Volatile(t)
                | TypeData::Restrict(t)
                | TypeData::TypeTag(t) => {
                    id = t;
                    continue;
                }
                _ => (0, false),
            };
            return (size.saturating_mul(count), signed);
        }
        (0, false)
    }
}
