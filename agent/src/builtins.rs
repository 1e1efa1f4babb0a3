//! bpftrace's builtin variables and functions: signatures and one-line docs, for
//! completion, inspection and (later) checking.

/// Whether a builtin is a variable (`pid`) or a function (`printf(...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    Variable,
    Function,
    /// Aggregation functions, assigned to maps: `@x = count()`.
    Aggregation,
}

/// One builtin as documented for bpftrace 0.17.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: BuiltinKind,
    pub signature: &'static str,
    pub doc: &'static str,
    /// Needs `--unsafe`.
    pub unsafe_: bool,
}

const fn var(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    Builtin {
        name,
        kind: BuiltinKind::Variable,
        signature,
        doc,
        unsafe_: false,
    }
}

const fn func(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    Builtin {
        name,
        kind: BuiltinKind::Function,
        signature,
        doc,
        unsafe_: false,
    }
}

const fn unsafe_func(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    Builtin {
        name,
        kind: BuiltinKind::Function,
        signature,
        doc,
        unsafe_: true,
    }
}

const fn agg(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    Builtin {
        name,
        kind: BuiltinKind::Aggregation,
        signature,
        doc,
        unsafe_: false,
    }
}

pub const BUILTINS: &[Builtin] = &[
    var(
        "pid",
        "pid: uint32",
        "Process ID (kernel tgid) of the current task.",
    ),
    var(
        "tid",
        "tid: uint32",
        "Thread ID (kernel pid) of the current task.",
    ),
    var("uid", "uid: uint32", "User ID of the current task."),
    var("gid", "gid: uint32", "Group ID of the current task."),
    var(
        "nsecs",
        "nsecs: uint64",
        "Nanosecond timestamp (monotonic clock).",
    ),
    var(
        "elapsed",
        "elapsed: uint64",
        "Nanoseconds since bpftrace started.",
    ),
    var("numaid", "numaid: uint32", "NUMA node ID."),
    var("cpu", "cpu: uint32", "CPU the probe fired on."),
    var(
        "comm",
        "comm: string[16]",
        "Name of the current process (task comm).",
    ),
    var("kstack", "kstack: kstack", "Kernel stack trace."),
    var("ustack", "ustack: ustack", "User stack trace."),
    var(
        "arg0",
        "arg0 .. argN: uint64",
        "Arguments of a kprobe or uprobe, as integers.",
    ),
    var(
        "sarg0",
        "sarg0 .. sargN: int64",
        "Stack arguments of a kprobe or uprobe.",
    ),
    var(
        "retval",
        "retval: uint64",
        "Return value in kretprobe, uretprobe and kretfunc.",
    ),
    var("func", "func: string", "Name of the traced function."),
    var(
        "probe",
        "probe: string",
        "Full name of the probe that fired.",
    ),
    var(
        "curtask",
        "curtask: struct task_struct *",
        "The current task_struct.",
    ),
    var("rand", "rand: uint32", "A pseudo-random number."),
    var(
        "cgroup",
        "cgroup: uint64",
        "Cgroup v2 ID of the current process.",
    ),
    var(
        "cpid",
        "cpid: uint32",
        "PID of the child process started with -c.",
    ),
    var(
        "args",
        "args: struct",
        "Typed arguments of a tracepoint, kfunc or usdt probe: args->NAME.",
    ),
    var(
        "jiffies",
        "jiffies: uint64",
        "Jiffies of the kernel (needs kernel support).",
    ),
    func(
        "printf",
        "printf(char *fmt, ...)",
        "Print formatted text; %d %u %x %s %c %p %lu %llu ...",
    ),
    func(
        "time",
        "time(char *fmt)",
        "Print the current time with strftime format.",
    ),
    func(
        "join",
        "join(char *arr[] [, char *delim])",
        "Print an array of strings joined by delim (default space).",
    ),
    func(
        "str",
        "str(char *s [, int length]): string",
        "Read a NUL-terminated string from kernel or user memory.",
    ),
    func(
        "buf",
        "buf(void *d [, int length]): buffer",
        "Read a hex-formatted buffer of length bytes.",
    ),
    func(
        "ksym",
        "ksym(void *p): string",
        "Resolve a kernel address to its symbol name.",
    ),
    func(
        "usym",
        "usym(void *p): string",
        "Resolve a user-space address to its symbol name.",
    ),
    func(
        "kaddr",
        "kaddr(char *name): uint64",
        "Address of a kernel symbol.",
    ),
    func(
        "uaddr",
        "uaddr(char *name): uint64",
        "Address of a user-space symbol (uprobes).",
    ),
    func(
        "reg",
        "reg(char *name): uint64",
        "Value of a CPU register, e.g. reg(\"ip\").",
    ),
    func(
        "ntop",
        "ntop([int af,] int|char[4]|char[16] addr): inet",
        "Format an IPv4 or IPv6 address as text.",
    ),
    func(
        "pton",
        "pton(char *addr): char[4]|char[16]",
        "Parse an IPv4 or IPv6 address literal.",
    ),
    func(
        "cgroupid",
        "cgroupid(char *path): uint64",
        "Cgroup ID of a cgroup path.",
    ),
    func(
        "kstack",
        "kstack([StackMode mode,] [int limit]): kstack",
        "Kernel stack, e.g. kstack(perf, 5).",
    ),
    func(
        "ustack",
        "ustack([StackMode mode,] [int limit]): ustack",
        "User stack, e.g. ustack(bpftrace, 10).",
    ),
    func(
        "cat",
        "cat(char *filename)",
        "Print the contents of a file.",
    ),
    func(
        "exit",
        "exit()",
        "Stop tracing: detach probes, print maps, quit.",
    ),
    func(
        "strncmp",
        "strncmp(char *s1, char *s2, int length): int",
        "Compare at most length bytes; 0 when equal.",
    ),
    func(
        "sizeof",
        "sizeof(TYPE | EXPR): uint64",
        "Size of a type or expression in bytes.",
    ),
    func(
        "print",
        "print(@map [, int top [, int div]]) | print(value)",
        "Print a map or a value now.",
    ),
    func("clear", "clear(@map)", "Delete all keys of a map."),
    func("zero", "zero(@map)", "Set all values of a map to zero."),
    func("delete", "delete(@map[key])", "Delete one key of a map."),
    func(
        "strftime",
        "strftime(char *fmt, int nsecs): timestamp",
        "Format a timestamp (used in printf with %s).",
    ),
    func(
        "path",
        "path(struct path *p): string",
        "Full path of a struct path (kfunc probes only).",
    ),
    func(
        "macaddr",
        "macaddr(char[6] addr): macaddr",
        "Format a MAC address.",
    ),
    func(
        "kptr",
        "kptr(void *p): void *",
        "Mark a pointer as a kernel pointer.",
    ),
    func(
        "uptr",
        "uptr(void *p): void *",
        "Mark a pointer as a user-space pointer.",
    ),
    func(
        "cgroup_path",
        "cgroup_path(int cgroupid [, string filter]): cgroup_path",
        "Path of a cgroup ID.",
    ),
    func(
        "skboutput",
        "skboutput(char *path, struct sk_buff *skb, uint64 length, uint64 offset)",
        "Write packet data to a pcap file.",
    ),
    unsafe_func(
        "system",
        "system(char *fmt, ...)",
        "Run a shell command (needs --unsafe).",
    ),
    unsafe_func(
        "signal",
        "signal(char *sig | int sig)",
        "Send a signal to the current task (needs --unsafe).",
    ),
    unsafe_func(
        "override",
        "override(int rc)",
        "Override a kprobed function's return value (needs --unsafe).",
    ),
    agg("count", "@x = count()", "Count events."),
    agg("sum", "@x = sum(int n)", "Sum of values."),
    agg("avg", "@x = avg(int n)", "Average of values."),
    agg("min", "@x = min(int n)", "Minimum value."),
    agg("max", "@x = max(int n)", "Maximum value."),
    agg("stats", "@x = stats(int n)", "Count, average and total."),
    agg("hist", "@x = hist(int n)", "Power-of-two histogram."),
    agg(
        "lhist",
        "@x = lhist(int n, int min, int max, int step)",
        "Linear histogram.",
    ),
];

/// Looks up a builtin by name (`arg3` finds `arg0`).
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    let canonical = if name.starts_with("arg") && name[3..].parse::<u32>().is_ok() {
        "arg0"
    } else if name.starts_with("sarg") && name[4..].parse::<u32>().is_ok() {
        "sarg0"
    } else {
        name
    };
    BUILTINS.iter().find(|b| b.name == canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        assert_eq!(builtin("printf").unwrap().kind, BuiltinKind::Function);
        assert_eq!(builtin("arg5").unwrap().name, "arg0");
        assert!(builtin("system").unwrap().unsafe_);
        assert!(builtin("nosuch").is_none());
    }
}
