// The example library is compiled into the binary (include_dir!), which does not
// tell cargo to rebuild when a file is added or edited; this does.
fn main() {
    println!("cargo:rerun-if-changed=../specs/examples");
    println!("cargo:rerun-if-changed=../specs/contracts");
}
