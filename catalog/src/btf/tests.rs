//! Tests of the BTF reader on small blobs built here, one or more per kind, and on malformed
//! blobs (which must give errors, never panics).

use super::reader::*;

// BTF kinds (include/uapi/linux/btf.h).
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// Builds raw BTF: types are appended as words, names interned into the string section.
#[derive(Clone)]
struct Builder {
    strings: Vec<u8>,
    words: Vec<u32>,
    next_id: u32,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            strings: vec![0],
            words: Vec::new(),
            next_id: 1,
        }
    }

    /// Offset of `name` in the string section (0 for "").
    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    /// Appends one type record with trailing words; returns its id.
    fn ty(&mut self, name: &str, kind: u32, kflag: bool, vlen: u32, st: u32, extra: &[u32]) -> u32 {
        let name = self.s(name);
        let info = (u32::from(kflag) << 31) | (kind << 24) | vlen;
        self.words.extend([name, info, st]);
        self.words.extend_from_slice(extra);
        self.next_id += 1;
        self.next_id - 1
    }

    fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        self.ty(
            name,
            INT,
            false,
            0,
            size,
            &[(u32::from(signed) << 24) | (size * 8)],
        )
    }

    fn reference(&mut self, kind: u32, name: &str, target: u32) -> u32 {
        self.ty(name, kind, false, 0, target, &[])
    }

    /// A struct or union from (name, type, bit offset, bitfield size) members.
    fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let kflag = members.iter().any(|m| m.3 != 0);
        let mut extra = Vec::new();
        for &(n, t, off, bits) in members {
            let n = self.s(n);
            extra.extend([n, t, if kflag { (bits << 24) | off } else { off }]);
        }
        self.ty(name, kind, kflag, members.len() as u32, size, &extra)
    }

    fn proto(&mut self, ret: u32, params: &[(&str, u32)], variadic: bool) -> u32 {
        let mut extra = Vec::new();
        for &(n, t) in params {
            let n = self.s(n);
            extra.extend([n, t]);
        }
        if variadic {
            extra.extend([0, 0]);
        }
        self.ty("", FUNC_PROTO, false, extra.len() as u32 / 2, ret, &extra)
    }

    fn blob_with(&self, big_endian: bool) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let types: Vec<u8> = self.words.iter().flat_map(|&v| w(v)).collect();
        let mut out = Vec::new();
        out.extend(if big_endian {
            0xeb9fu16.to_be_bytes()
        } else {
            0xeb9fu16.to_le_bytes()
        });
        out.extend([1, 0]);
        for v in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend(w(v));
        }
        out.extend(types);
        out.extend(&self.strings);
        out
    }

    fn blob(&self) -> Vec<u8> {
        self.blob_with(false)
    }

    fn parse(&self) -> BtfTypes {
        BtfTypes::parse(&self.blob()).expect("test blob parses")
    }
}

fn data(btf: &BtfTypes, id: TypeId) -> TypeData<'_> {
    btf.type_by_id(id).unwrap().data
}

#[test]
fn int_kinds_and_encodings() {
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    let uchar = b.ty("unsigned char", INT, false, 0, 1, &[(2 << 24) | 8]);
    let bool_ = b.ty("_Bool", INT, false, 0, 1, &[(4 << 24) | 8]);
    let odd = b.ty("bits", INT, false, 0, 4, &[(3 << 16) | 5]);
    let u128 = b.int("__int128 unsigned", 16, false);
    let btf = b.parse();
    assert_eq!(btf.len(), 6);
    let t = btf.type_by_id(int).unwrap();
    assert_eq!((t.name, t.kind()), ("int", Kind::Int));
    let TypeData::Int(i) = t.data else { panic!() };
    assert_eq!((i.size, i.signed, i.bits, i.bit_offset), (4, true, 32, 0));
    let TypeData::Int(c) = data(&btf, uchar) else {
        panic!()
    };
    assert!(c.char && !c.signed && !c.bool);
    let TypeData::Int(bo) = data(&btf, bool_) else {
        panic!()
    };
    assert!(bo.bool);
    let TypeData::Int(o) = data(&btf, odd) else {
        panic!()
    };
    assert_eq!((o.bits, o.bit_offset), (5, 3));
    assert_eq!(btf.size_of(u128), Ok(16));
    assert_eq!(btf.type_name(uchar), "unsigned char");
    assert_eq!(btf.size_and_sign(int), (4, true));
}

#[test]
fn pointers_qualifiers_typedefs_and_tags() {
    let mut b = Builder::new();
    let char_ = b.int("char", 1, true); // 1
    let cchar = b.reference(CONST, "", char_); // 2
    let pcc = b.reference(PTR, "", cchar); // 3 const char *
    let pconst = b.reference(CONST, "", pcc); // 4 const char * const
    let vol = b.reference(VOLATILE, "", char_); // 5
    let restrict = b.reference(RESTRICT, "", pcc); // 6
    let user = b.reference(TYPE_TAG, "user", char_); // 7
    let puser = b.reference(PTR, "", user); // 8
    let u16_ = b.int("unsigned short", 2, false); // 9
    let be16 = b.reference(TYPEDEF, "__be16", u16_); // 10
    let cbe16 = b.reference(CONST, "", be16); // 11
    let pp = b.reference(PTR, "", pcc); // 12
    let pvoid = b.reference(PTR, "", 0); // 13
    let btf = b.parse();

    assert!(matches!(data(&btf, pcc), TypeData::Ptr(t) if t == cchar));
    assert!(matches!(data(&btf, cchar), TypeData::Const(t) if t == char_));
    assert!(matches!(data(&btf, vol), TypeData::Volatile(t) if t == char_));
    assert!(matches!(data(&btf, restrict), TypeData::Restrict(t) if t == pcc));
    let tag = btf.type_by_id(user).unwrap();
    assert_eq!(
        (tag.name, tag.kind(), tag.target()),
        ("user", Kind::TypeTag, Some(char_))
    );
    assert_eq!(btf.type_name(pcc), "const char *");
    assert_eq!(btf.type_name(pconst), "const char * const");
    assert_eq!(btf.type_name(vol), "volatile char");
    assert_eq!(btf.type_name(restrict), "const char *");
    assert_eq!(btf.type_name(puser), "char *");
    assert_eq!(btf.type_name(pp), "const char **");
    assert_eq!(btf.type_name(pvoid), "void *");
    assert_eq!(btf.type_name(cbe16), "const __be16");
    assert_eq!(btf.type_name(0), "void");
    assert_eq!(btf.type_name(999), "?");

    // __be16 resolves to an unsigned 16-bit int; qualifiers alone stop at the typedef.
    assert_eq!(btf.find_by_name(Kind::Typedef, "__be16"), Some(be16));
    assert_eq!(btf.resolve(cbe16), Ok(u16_));
    assert_eq!(btf.skip_qualifiers(cbe16), Ok(be16));
    assert_eq!(btf.resolve(pcc), Ok(pcc), "pointers are not followed");
    assert_eq!(btf.size_of(cbe16), Ok(2));
    assert_eq!(btf.size_of(pcc), Ok(std::mem::size_of::<usize>() as u64));
    assert_eq!(btf.size_and_sign(cbe16), (2, false));
    assert_eq!(btf.size_of(0), Err(BtfError::NoSize(0)));
    assert_eq!(btf.resolve(999), Err(BtfError::NoType(999)));
}

#[test]
fn arrays() {
    let mut b = Builder::new();
    let u8_ = b.int("unsigned char", 1, false); // 1
    let u8t = b.reference(TYPEDEF, "__u8", u8_); // 2
    let idx = b.int("int", 4, true); // 3
    let arr = b.ty("", ARRAY, false, 0, 0, &[u8t, idx, 4]); // 4
    let arr2 = b.ty("", ARRAY, false, 0, 0, &[arr, idx, 3]); // 5
    let flex = b.ty("", ARRAY, false, 0, 0, &[u8_, idx, 0]); // 6
    let btf = b.parse();
    let TypeData::Array(a) = data(&btf, arr) else {
        panic!()
    };
    assert_eq!((a.elem, a.index, a.len), (u8t, idx, 4));
    assert_eq!(btf.type_name(arr), "__u8[4]");
    assert_eq!(btf.type_name(arr2), "__u8[4][3]");
    assert_eq!(btf.size_of(arr2), Ok(12));
    assert_eq!(btf.size_and_sign(arr2), (12, false));
    assert_eq!(btf.size_of(flex), Ok(0));
}

#[test]
fn structs_unions_and_bitfields() {
    let mut b = Builder::new();
    let uint = b.int("unsigned int", 4, false); // 1
    let u16_ = b.int("unsigned short", 2, false); // 2
                                                  // struct flags { unsigned int a:3, b:5; unsigned short c; } with kind_flag offsets.
    let flags = b.composite(
        STRUCT,
        "flags",
        8,
        &[("a", uint, 0, 3), ("b", uint, 3, 5), ("c", u16_, 32, 0)],
    ); // 3
       // The old encoding: kind_flag clear, an INT of 4 bits at bit 2 of its storage.
    let nibble = b.ty("unsigned int", INT, false, 0, 4, &[(2 << 16) | 4]); // 4
    let old = b.composite(STRUCT, "old", 4, &[("n", nibble, 8, 0), ("m", uint, 0, 0)]); // 5
                                                                                        // union { unsigned int x; unsigned short y; } embedded anonymously in struct outer.
    let anon = b.composite(UNION, "", 4, &[("x", uint, 0, 0), ("y", u16_, 0, 0)]); // 6
    let common = b.composite(STRUCT, "common", 4, &[("family", u16_, 16, 0)]); // 7
    let outer = b.composite(
        STRUCT,
        "outer",
        12,
        &[
            ("__common", common, 0, 0),
            ("", anon, 32, 0),
            ("z", uint, 64, 0),
        ],
    ); // 8
    let couter = b.reference(CONST, "", outer); // 9
    let fwd = b.ty("later", FWD, false, 0, 0, &[]); // 10
    let fwd_u = b.ty("ulater", FWD, true, 0, 0, &[]); // 11
    let btf = b.parse();

    let t = btf.type_by_id(flags).unwrap();
    let TypeData::Struct(s) = t.data else {
        panic!()
    };
    assert_eq!(s.size, 8);
    let m: Vec<_> = s
        .members()
        .map(|m| (m.name, m.ty, m.bit_offset, m.bitfield_size))
        .collect();
    assert_eq!(
        m,
        [("a", uint, 0, 3), ("b", uint, 3, 5), ("c", u16_, 32, 0)]
    );
    assert_eq!(s.members().len(), 3);

    let TypeData::Struct(o) = data(&btf, old) else {
        panic!()
    };
    let m: Vec<_> = o
        .members()
        .map(|m| (m.name, m.bit_offset, m.bitfield_size))
        .collect();
    assert_eq!(m, [("n", 10, 4), ("m", 0, 0)]);

    let TypeData::Union(u) = data(&btf, anon) else {
        panic!()
    };
    assert_eq!(u.members().count(), 2);
    assert_eq!(btf.type_name(anon), "union (anon)");
    assert_eq!(btf.type_name(outer), "struct outer");
    assert_eq!(btf.type_name(fwd), "struct later");
    assert_eq!(btf.type_name(fwd_u), "union ulater");
    assert!(matches!(
        data(&btf, fwd_u),
        TypeData::Fwd { is_union: true }
    ));
    assert_eq!(btf.size_of(couter), Ok(12));
    assert_eq!(btf.size_of(fwd), Err(BtfError::NoSize(fwd)));
    assert_eq!(btf.size_and_sign(outer), (12, false));

    // Members by name, through const and into the anonymous union.
    let y = btf.member_by_name(couter, "y").unwrap().unwrap();
    assert_eq!((y.ty, y.bit_offset), (u16_, 32));
    let c = btf.member_by_name(outer, "__common").unwrap().unwrap();
    assert_eq!(c.ty, common);
    assert_eq!(btf.member_by_name(outer, "nope"), Ok(None));
    assert!(btf.member_by_name(uint, "x").is_err());
    assert_eq!(btf.find_by_name(Kind::Struct, "outer"), Some(outer));
    assert_eq!(btf.find_by_name(Kind::Union, "outer"), None);
    assert_eq!(btf.find_by_name(Kind::Fwd, "later"), Some(fwd));
}

#[test]
fn enums_32_and_64_bit() {
    let mut b = Builder::new();
    let (a, bn, c) = (b.s("A"), b.s("B"), b.s("C"));
    let unsigned = b.ty("state", ENUM, false, 2, 4, &[a, 1, bn, 0xffff_fffe]); // 1
    let signed = b.ty("sign", ENUM, true, 1, 4, &[c, (-5i32) as u32]); // 2
    let big = u64::MAX - 1;
    let e64 = b.ty(
        "wide",
        ENUM64,
        false,
        1,
        8,
        &[a, big as u32, (big >> 32) as u32],
    ); // 3
    let neg = -(1i64 << 40);
    let e64s = b.ty(
        "",
        ENUM64,
        true,
        1,
        8,
        &[bn, neg as u32, (neg as u64 >> 32) as u32],
    ); // 4
    let btf = b.parse();

    let TypeData::Enum(e) = data(&btf, unsigned) else {
        panic!()
    };
    assert!(!e.signed);
    let v: Vec<_> = e.values().map(|v| (v.name, v.value)).collect();
    assert_eq!(v, [("A", 1), ("B", 0xffff_fffe)]);
    let TypeData::Enum(e) = data(&btf, signed) else {
        panic!()
    };
    assert_eq!(e.values().next().unwrap().value, -5);
    let TypeData::Enum64(e) = data(&btf, e64) else {
        panic!()
    };
    assert_eq!(
        (e.size, e.values().next().unwrap().value),
        (8, i128::from(big))
    );
    let TypeData::Enum64(e) = data(&btf, e64s) else {
        panic!()
    };
    assert_eq!(
        e.values().next().unwrap(),
        EnumValue {
            name: "B",
            value: i128::from(neg)
        }
    );
    assert_eq!(btf.type_name(unsigned), "enum state");
    assert_eq!(btf.type_name(e64s), "enum (anon)");
    assert_eq!(btf.size_and_sign(signed), (4, true));
    assert_eq!(btf.size_and_sign(e64), (8, false));
    assert_eq!(btf.find_by_name(Kind::Enum64, "wide"), Some(e64));
}

#[test]
fn functions_prototypes_and_pointers_to_them() {
    let mut b = Builder::new();
    let int = b.int("int", 4, true); // 1
    let long = b.int("long int", 8, true); // 2
    let ssize = b.reference(TYPEDEF, "ssize_t", long); // 3
    let file = b.composite(STRUCT, "file", 8, &[]); // 4
    let pfile = b.reference(PTR, "", file); // 5
    let proto = b.proto(ssize, &[("file", pfile), ("count", int)], false); // 6
    let func = b.ty("vfs_read", FUNC, false, 1, proto, &[]); // 7
    let cb_proto = b.proto(int, &[("", int)], false); // 8
    let cb = b.reference(PTR, "", cb_proto); // 9
    let printk = b.proto(int, &[("fmt", pfile)], true); // 10
    let sfunc = b.ty("helper", FUNC, false, 0, printk, &[]); // 11
    let void_proto = b.proto(0, &[], false); // 12
    let btf = b.parse();

    let f = btf.type_by_id(func).unwrap();
    assert_eq!((f.name, f.kind()), ("vfs_read", Kind::Func));
    let TypeData::Func(fd) = f.data else { panic!() };
    assert_eq!((fd.proto, fd.linkage), (proto, Linkage::Global));
    let TypeData::FuncProto(p) = data(&btf, proto) else {
        panic!()
    };
    assert_eq!(p.ret, ssize);
    assert!(!p.variadic);
    let params: Vec<_> = p.params().map(|p| (p.name, p.ty)).collect();
    assert_eq!(params, [("file", pfile), ("count", int)]);
    let TypeData::FuncProto(v) = data(&btf, printk) else {
        panic!()
    };
    assert!(v.variadic);
    assert_eq!(v.params().len(), 1);
    assert!(matches!(
        data(&btf, sfunc),
        TypeData::Func(Func {
            linkage: Linkage::Static,
            ..
        })
    ));

    assert_eq!(btf.type_name(cb), "int (*)(int)");
    assert_eq!(btf.type_name(proto), "ssize_t (struct file *, int)");
    assert_eq!(btf.type_name(printk), "int (struct file *, ...)");
    assert_eq!(btf.type_name(void_proto), "void (void)");
    assert_eq!(btf.type_name(func), "vfs_read");
    assert_eq!(btf.size_of(proto), Err(BtfError::NoSize(proto)));
    assert_eq!(btf.find_by_name(Kind::Func, "vfs_read"), Some(func));
    assert_eq!(btf.find_all_by_name("file"), vec![file]);
    assert_eq!(btf.find_all_by_name(""), Vec::<TypeId>::new());
}

#[test]
fn vars_datasecs_floats_and_decl_tags() {
    let mut b = Builder::new();
    let int = b.int("int", 4, true); // 1
    let var = b.ty("jiffies_seen", VAR, false, 0, int, &[1]); // 2
    let var2 = b.ty("local", VAR, false, 0, int, &[0]); // 3
    let sec = b.ty(".data", DATASEC, false, 2, 16, &[var, 0, 4, var2, 8, 4]); // 4
    let dbl = b.ty("double", FLOAT, false, 0, 8, &[]); // 5
    let s = b.composite(STRUCT, "tagged", 4, &[("v", int, 0, 0)]); // 6
    let whole = b.ty("rcu", DECL_TAG, false, 0, s, &[u32::MAX]); // 7
    let member = b.ty("percpu", DECL_TAG, true, 0, s, &[0]); // 8
    let btf = b.parse();

    assert!(
        matches!(data(&btf, var), TypeData::Var(Var { ty, linkage: Linkage::Global }) if ty == int)
    );
    assert!(matches!(
        data(&btf, var2),
        TypeData::Var(Var {
            linkage: Linkage::Static,
            ..
        })
    ));
    let TypeData::Datasec(d) = data(&btf, sec) else {
        panic!()
    };
    assert_eq!(d.size, 16);
    let vars: Vec<_> = d.vars().collect();
    assert_eq!(
        vars,
        [
            SecVar {
                ty: var,
                offset: 0,
                size: 4
            },
            SecVar {
                ty: var2,
                offset: 8,
                size: 4
            }
        ]
    );
    assert!(matches!(data(&btf, dbl), TypeData::Float { size: 8 }));
    assert_eq!(btf.size_and_sign(dbl), (8, true));
    assert_eq!(btf.type_name(dbl), "double");
    assert_eq!(btf.type_name(var), "jiffies_seen");
    assert_eq!(btf.type_name(sec), ".data");
    assert_eq!(btf.size_of(var), Ok(4));
    assert_eq!(btf.size_of(sec), Ok(16));
    let t = btf.type_by_id(whole).unwrap();
    assert_eq!(t.name, "rcu");
    assert!(
        matches!(t.data, TypeData::DeclTag(DeclTag { target, component: None, attribute: false }) if target == s)
    );
    assert!(matches!(
        data(&btf, member),
        TypeData::DeclTag(DeclTag {
            component: Some(0),
            attribute: true,
            ..
        })
    ));
    assert_eq!(btf.type_name(whole), "struct tagged");
    assert_eq!(btf.iter().count(), 8);
    assert_eq!(
        btf.iter()
            .map(|t| t.kind())
            .filter(|&k| k == Kind::DeclTag)
            .count(),
        2
    );
}

#[test]
fn big_endian_blobs_read_the_same() {
    let mut b = Builder::new();
    let uint = b.int("unsigned int", 4, false);
    let s = b.composite(STRUCT, "s", 4, &[("a", uint, 0, 3), ("b", uint, 3, 29)]);
    let (n, m) = (b.s("N"), b.s("M"));
    let e = b.ty(
        "e",
        ENUM64,
        true,
        2,
        8,
        &[n, 5, 0, m, 0xffff_ffff, 0xffff_ffff],
    );
    let btf = BtfTypes::parse(&b.blob_with(true)).unwrap();
    let TypeData::Struct(c) = data(&btf, s) else {
        panic!()
    };
    let m: Vec<_> = c
        .members()
        .map(|m| (m.name, m.bit_offset, m.bitfield_size))
        .collect();
    assert_eq!(m, [("a", 0, 3), ("b", 3, 29)]);
    let TypeData::Enum64(en) = data(&btf, e) else {
        panic!()
    };
    let v: Vec<_> = en.values().map(|v| v.value).collect();
    assert_eq!(v, [5, -1]);
    assert_eq!(btf.type_name(s), "struct s");
}

/// A blob with one type of each kind, for the malformed-input tests.
fn every_kind() -> Builder {
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    let p = b.reference(PTR, "", int);
    b.ty("", ARRAY, false, 0, 0, &[int, int, 2]);
    let s = b.composite(STRUCT, "s", 8, &[("a", int, 0, 0), ("b", p, 0, 3)]);
    b.composite(UNION, "u", 4, &[("a", int, 0, 0)]);
    let n = b.s("V");
    b.ty("e", ENUM, false, 1, 4, &[n, 1]);
    b.ty("f", FWD, false, 0, 0, &[]);
    b.reference(TYPEDEF, "t", int);
    b.reference(VOLATILE, "", int);
    b.reference(CONST, "", p);
    b.reference(RESTRICT, "", p);
    let proto = b.proto(int, &[("x", p)], true);
    b.ty("fn", FUNC, false, 1, proto, &[]);
    let v = b.ty("v", VAR, false, 0, int, &[1]);
    b.ty(".bss", DATASEC, false, 1, 4, &[v, 0, 4]);
    b.ty("float", FLOAT, false, 0, 4, &[]);
    b.ty("tag", DECL_TAG, false, 0, s, &[1]);
    b.reference(TYPE_TAG, "user", int);
    b.ty("e64", ENUM64, false, 1, 8, &[n, 1, 2]);
    b
}

/// Exercises every accessor on every type; must not panic whatever the blob held.
fn exercise(btf: &BtfTypes) {
    for id in 0..btf.len() as u32 + 2 {
        let _ = btf.type_name(id);
        let _ = btf.size_of(id);
        let _ = btf.size_and_sign(id);
        let _ = btf.resolve(id);
        let _ = btf.skip_qualifiers(id);
        let _ = btf.member_by_name(id, "a");
        let _ = btf.kind_of(id);
        let _ = btf.name_of(id);
        if let Ok(t) = btf.type_by_id(id) {
            let _ = format!("{t:?}");
        }
    }
    let _ = btf.find_by_name(Kind::Struct, "s");
    let _ = btf.find_all_by_name("int");
}

#[test]
fn every_kind_parses() {
    let btf = every_kind().parse();
    assert_eq!(btf.len(), 20);
    let kinds: Vec<Kind> = btf.iter().map(|t| t.kind()).collect();
    assert_eq!(kinds.len(), 19);
    exercise(&btf);
}

fn err(blob: &[u8]) -> BtfError {
    BtfTypes::parse(blob).expect_err("malformed blob must be refused")
}

/// Little-endian word `i` of the type section, for patching test blobs.
fn patch(blob: &mut [u8], word: usize, value: u32) {
    let at = 24 + 4 * word;
    blob[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn malformed_headers_are_errors() {
    let good = every_kind().blob();
    assert!(matches!(err(&[]), BtfError::Truncated { .. }));
    assert!(matches!(err(b"not btf at all"), BtfError::BadMagic(_)));
    assert!(matches!(err(&good[..20]), BtfError::Truncated { .. }));
    assert!(matches!(err(&good[..30]), BtfError::Truncated { .. }));
    assert!(matches!(
        err(&good[..good.len() - 1]),
        BtfError::Truncated { .. }
    ));
    let mut v = good.clone();
    v[2] = 2;
    assert_eq!(err(&v), BtfError::Version(2));
    let mut v = good.clone();
    v[3] = 1;
    assert!(matches!(err(&v), BtfError::Header(_)));
    for (field, value) in [
        (4, 8u32),
        (4, u32::MAX),
        (12, u32::MAX),
        (20, u32::MAX),
        (16, u32::MAX),
        (8, 2),
    ] {
        let mut v = good.clone();
        v[field..field + 4].copy_from_slice(&value.to_le_bytes());
        let _ = err(&v);
    }
    // Type and string sections on top of each other.
    let mut v = good.clone();
    v[16..20].copy_from_slice(&0u32.to_le_bytes());
    let _ = err(&v);
}

#[test]
fn malformed_strings_are_errors() {
    let b = every_kind();
    let mut v = b.blob();
    let last = v.len() - 1;
    v[last] = b'x';
    assert!(matches!(err(&v), BtfError::Strings(_)));
    let mut v = b.blob();
    let str_start = v.len() - b.strings.len();
    v[str_start] = b'x';
    assert!(matches!(err(&v), BtfError::Strings(_)));
    let mut v = b.blob();
    v[str_start + 1] = 0xff; // inside the first name: not UTF-8
    assert!(matches!(err(&v), BtfError::Strings(_)));
    // A name offset past the end of the string section.
    let mut v = b.blob();
    patch(&mut v, 0, b.strings.len() as u32 + 10);
    assert!(matches!(err(&v), BtfError::Strings(_)));
}

#[test]
fn malformed_types_are_errors() {
    // Unknown kind, and kind 0.
    for kind in [0u32, 20, 31] {
        let mut b = Builder::new();
        b.ty("x", kind, false, 0, 0, &[]);
        assert!(
            matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }),
            "kind {kind}"
        );
    }
    // A struct whose members run past the end of the type section.
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    b.ty("s", STRUCT, false, 3, 4, &[0, int, 0]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 2, .. }));
    // A reference to a type that does not exist, from each place references live.
    let cases: [fn(&mut Builder); 7] = [
        |b| {
            b.reference(PTR, "", 99);
        },
        |b| {
            b.ty("", ARRAY, false, 0, 0, &[99, 1, 1]);
        },
        |b| {
            b.composite(STRUCT, "s", 4, &[("a", 99, 0, 0)]);
        },
        |b| {
            b.proto(99, &[], false);
        },
        |b| {
            b.proto(1, &[("a", 99)], false);
        },
        |b| {
            b.ty(".d", DATASEC, false, 1, 4, &[99, 0, 4]);
        },
        |b| {
            b.ty("t", DECL_TAG, false, 0, 99, &[u32::MAX]);
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut b = Builder::new();
        b.int("int", 4, true);
        case(&mut b);
        assert!(
            matches!(err(&b.blob()), BtfError::BadType { id: 99, .. }),
            "case {i}"
        );
    }
    // FUNC pointing at something other than a FUNC_PROTO.
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    b.ty("f", FUNC, false, 0, int, &[]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 2, .. }));
    // `...` anywhere but last, and a named void parameter.
    let mut b = Builder::new();
    b.ty("", FUNC_PROTO, false, 2, 0, &[0, 0, 0, 0]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }));
    let mut b = Builder::new();
    let n = b.s("x");
    b.ty("", FUNC_PROTO, false, 1, 0, &[n, 0]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }));
    // INT wider than its size, and an impossible size.
    let mut b = Builder::new();
    b.ty("int", INT, false, 0, 4, &[33]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }));
    let mut b = Builder::new();
    b.ty("int", INT, false, 0, 3, &[24]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }));
    // Unused info bits.
    let mut b = Builder::new();
    b.int("int", 4, true);
    let mut v = b.blob();
    patch(&mut v, 1, (INT << 24) | (1 << 16));
    assert!(matches!(err(&v), BtfError::BadType { id: 1, .. }));
    // A member count on a kind that has no members.
    let mut b = Builder::new();
    b.ty("t", TYPEDEF, false, 3, 0, &[]);
    assert!(matches!(err(&b.blob()), BtfError::BadType { id: 1, .. }));
}

#[test]
fn loops_are_errors() {
    // typedef a -> typedef b -> typedef a.
    let mut b = Builder::new();
    b.reference(TYPEDEF, "a", 2);
    b.reference(TYPEDEF, "b", 1);
    assert!(matches!(err(&b.blob()), BtfError::Loop(_)));
    // A pointer to itself.
    let mut b = Builder::new();
    b.reference(PTR, "", 1);
    assert!(matches!(err(&b.blob()), BtfError::Loop(1)));
    // const -> volatile -> array of the const, reached from a typedef outside the loop.
    let mut b = Builder::new();
    b.int("int", 4, true);
    b.reference(TYPEDEF, "t", 3);
    b.reference(CONST, "", 4);
    b.reference(VOLATILE, "", 5);
    b.ty("", ARRAY, false, 0, 0, &[3, 1, 2]);
    assert!(matches!(err(&b.blob()), BtfError::Loop(_)));
    // Through a struct member is not a loop: `struct list { struct list *next; }`.
    let mut b = Builder::new();
    b.composite(STRUCT, "list", 8, &[("next", 2, 0, 0)]);
    b.reference(PTR, "", 1);
    let btf = b.parse();
    assert_eq!(btf.type_name(2), "struct list *");
}

#[test]
fn branching_prototypes_are_spelled_in_bounded_time() {
    // 30 prototypes, each taking two pointers to the next: 2^30 paths if walked naively.
    let mut b = Builder::new();
    let int = b.int("int", 4, true); // 1
    for i in 0..30u32 {
        let proto_id = 2 + 2 * i;
        let next_ptr = proto_id + 3;
        b.proto(int, &[("a", next_ptr), ("b", next_ptr)], false);
        b.reference(PTR, "", proto_id);
    }
    b.proto(int, &[], false); // 62
    b.reference(PTR, "", 62); // 63
    let btf = b.parse();
    let t = std::time::Instant::now();
    let s = btf.type_name(3);
    assert!(s.contains('?'), "{s}");
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn mutated_blobs_never_panic() {
    let good = every_kind().blob();
    // Every truncation.
    for len in 0..good.len() {
        if let Ok(btf) = BtfTypes::parse(&good[..len]) {
            exercise(&btf);
        }
    }
    // Deterministic pseudo-random byte and word changes (xorshift).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut v = good.clone();
        for _ in 0..1 + rand() % 3 {
            let at = (rand() % v.len() as u64) as usize;
            match rand() % 4 {
                0 => v[at] = rand() as u8,
                1 => v[at] ^= 1 << (rand() % 8),
                2 => v[at] = v[at].wrapping_add(1),
                _ => {
                    let at = at & !3;
                    if at + 4 <= v.len() {
                        let w = [0u32, 1, 2, 0xff, u32::MAX, 24][(rand() % 6) as usize];
                        v[at..at + 4].copy_from_slice(&w.to_le_bytes());
                    }
                }
            }
        }
        if let Ok(btf) = BtfTypes::parse(&v) {
            parsed += 1;
            exercise(&btf);
        }
    }
    // Some mutations (names, sizes) leave valid BTF; make sure those paths ran too.
    assert!(parsed > 100, "{parsed}");
}

#[test]
fn non_ascii_names_and_longer_headers() {
    let mut b = Builder::new();
    let int = b.int("int", 4, true);
    let s = b.reference(TYPEDEF, "größe", int);
    let btf = b.parse();
    assert_eq!(btf.name_of(s), Some("größe"));
    assert_eq!(btf.find_by_name(Kind::Typedef, "größe"), Some(s));
    // A name offset pointing into the middle of `ö` is refused.
    let mut v = b.blob();
    let name_word = 4; // type 2 starts after type 1, an INT of 4 words
    let off = u32::from_le_bytes(
        v[24 + 4 * name_word..28 + 4 * name_word]
            .try_into()
            .unwrap(),
    );
    patch(&mut v, name_word, off + 3);
    assert!(matches!(err(&v), BtfError::Strings(_)));

    // A newer producer's longer header: sections are found relative to its end.
    let blob = b.blob();
    let mut long = blob[..24].to_vec();
    long[4..8].copy_from_slice(&32u32.to_le_bytes());
    long.extend([0; 8]);
    long.extend(&blob[24..]);
    let btf = BtfTypes::parse(&long).unwrap();
    assert_eq!(btf.name_of(s), Some("größe"));
}

/// `find_by_name` with its per-kind indexes answers as filtering `find_all_by_name` does:
/// the first type of that kind with that name, whichever index was built first.
#[test]
fn per_kind_lookup_agrees_with_the_full_index() {
    let mut b = every_kind();
    // Same name, several kinds and duplicates within a kind.
    let int = 1;
    let t1 = b.reference(TYPEDEF, "dup", int);
    b.composite(STRUCT, "dup", 4, &[("a", int, 0, 0)]);
    b.reference(TYPEDEF, "dup", int);
    let probe = |btf: &BtfTypes| -> Vec<Option<TypeId>> {
        let mut out = Vec::new();
        for kind_id in 1..btf.len() as u32 {
            let kind = btf.kind_of(kind_id).unwrap();
            for name in ["int", "s", "u", "e", "f", "t", "fn", "v", ".bss", "float"] {
                out.push(btf.find_by_name(kind, name));
            }
            for name in ["dup", "", "missing"] {
                out.push(btf.find_by_name(kind, name));
            }
        }
        out
    };
    let expected = |btf: &BtfTypes| -> Vec<Option<TypeId>> {
        let mut out = Vec::new();
        for kind_id in 1..btf.len() as u32 {
            let kind = btf.kind_of(kind_id).unwrap();
            for name in ["int", "s", "u", "e", "f", "t", "fn", "v", ".bss", "float"]
                .into_iter()
                .chain(["dup", "", "missing"])
            {
                out.push(
                    btf.find_all_by_name(name)
                        .into_iter()
                        .find(|&id| btf.kind_of(id) == Some(kind)),
                );
            }
        }
        out
    };
    // Per-kind indexes built from the types, then from the full index.
    let lazy = b.parse();
    let first = probe(&lazy);
    let full = b.parse();
    let want = expected(&full);
    let second = probe(&full);
    assert_eq!(first, want);
    assert_eq!(second, want);
    assert_eq!(lazy.find_by_name(Kind::Typedef, "dup"), Some(t1));
    let t = lazy.find_by_name(Kind::Typedef, "t").unwrap();
    assert_eq!(
        (lazy.kind_of(t), lazy.name_of(t)),
        (Some(Kind::Typedef), Some("t"))
    );
    assert_eq!(lazy.find_by_name(Kind::Func, "t"), None);
}
