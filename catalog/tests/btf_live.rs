//! The BTF reader against the running kernel's `/sys/kernel/btf/vmlinux` (skipped, with a
//! note, where the kernel has no BTF).

use kgent_catalog::btf::{BtfTypes, Kind, TypeData};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

fn vmlinux() -> Option<BtfTypes> {
    if !std::path::Path::new(VMLINUX).exists() {
        eprintln!("skipped: no {VMLINUX}");
        return None;
    }
    Some(BtfTypes::from_file(VMLINUX).expect("kernel BTF parses"))
}

#[test]
fn live_struct_sock_has_sk_common() {
    let Some(btf) = vmlinux() else { return };
    assert!(btf.len() > 10_000, "{btf:?}");
    let sock = btf.find_by_name(Kind::Struct, "sock").expect("struct sock");
    let TypeData::Struct(s) = btf.type_by_id(sock).unwrap().data else {
        panic!("struct sock is not a struct");
    };
    let first = s.members().next().expect("struct sock has members");
    assert_eq!(first.name, "__sk_common");
    assert_eq!(first.bit_offset, 0);
    assert_eq!(btf.type_name(first.ty), "struct sock_common");
    // Members inside anonymous unions of sock_common are found by name, as C finds them.
    let family = btf
        .member_by_name(first.ty, "skc_family")
        .unwrap()
        .expect("skc_family");
    assert_eq!(btf.size_of(family.ty), Ok(2));
}

#[test]
fn live_be16_is_an_unsigned_16_bit_int() {
    let Some(btf) = vmlinux() else { return };
    let be16 = btf.find_by_name(Kind::Typedef, "__be16").expect("__be16");
    assert_eq!(btf.type_name(be16), "__be16");
    let TypeData::Int(i) = btf.type_by_id(btf.resolve(be16).unwrap()).unwrap().data else {
        panic!("__be16 does not resolve to an int");
    };
    assert_eq!((i.size, i.bits, i.signed), (2, 16, false));
}

#[test]
fn live_vfs_read_signature() {
    let Some(btf) = vmlinux() else { return };
    let f = btf.find_by_name(Kind::Func, "vfs_read").expect("vfs_read");
    let TypeData::Func(func) = btf.type_by_id(f).unwrap().data else {
        panic!("vfs_read is not a FUNC");
    };
    let TypeData::FuncProto(proto) = btf.type_by_id(func.proto).unwrap().data else {
        panic!("vfs_read has no prototype");
    };
    let params: Vec<(&str, String)> = proto
        .params()
        .map(|p| (p.name, btf.type_name(p.ty)))
        .collect();
    assert_eq!(params.len(), 4, "{params:?}");
    assert_eq!(params[0], ("file", "struct file *".to_string()));
    assert_eq!(params[2].1, "size_t");
    assert_eq!(params[3].1, "loff_t *");
    assert!(!proto.variadic);
    assert_eq!(btf.type_name(proto.ret), "ssize_t");
}
