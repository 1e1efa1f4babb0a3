//! bpftrace's builtin variables and functions: signatures, one-line docs, the
//! version that added each, argument counts per version and what each yields;
//! for completion, inspection and the checker.
//!
//! [`BUILTINS`] holds what bpftrace 0.17 (the version the project supports
//! fully) offers; [`LATER_BUILTINS`] what later versions added. Versions and
//! argument counts were measured against the installed 0.17 and read from
//! bpftrace's CHANGELOG for later releases.

/// A bpftrace version as (major, minor).
pub type Version = (u32, u32);

/// Whether a builtin is a variable (`pid`) or a function (`printf(...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    Variable,
    Function,
    /// Aggregation functions, assigned to maps: `@x = count()`.
    Aggregation,
}

/// What a builtin variable holds or a function returns, as far as the checker cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Yields {
    /// Nothing usable (`printf`, `exit`).
    Nothing,
    /// An integer that is never an address (`pid`, `nsecs`, `strncmp()`).
    Int,
    /// An integer that may well be an address (`arg0`, `retval`, `kaddr()`).
    Address,
    /// A string or something printed as one (`comm`, `str()`, `ksym()`, `ntop()`).
    Str,
    /// A buffer, printed with `%r` (`buf()`).
    Buffer,
    /// A stack trace, printed as a string (`kstack`).
    Stack,
    /// An aggregation, only assignable to a map (`count()`).
    Aggregation,
    /// The type of the first argument (`kptr()`, `uptr()`).
    FirstArgument,
    /// Depends on the probe or the arguments (`args`, `ctx`, `getopt()`).
    Other,
}

/// Argument counts valid from version `since` on (until the next entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arity {
    pub since: Version,
    pub min: u8,
    /// `u8::MAX` for "any number".
    pub max: u8,
}

/// One builtin.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: BuiltinKind,
    pub signature: &'static str,
    pub doc: &'static str,
    /// Needs `--unsafe`.
    pub unsafe_: bool,
    /// The first bpftrace version that has it.
    pub since: Version,
    /// The version that removed it, if any.
    pub until: Option<Version>,
    /// Argument counts by version, oldest first (functions only).
    pub arity: &'static [Arity],
    pub yields: Yields,
}

impl Builtin {
    /// Whether bpftrace `version` has this builtin.
    pub fn available_in(&self, version: Version) -> bool {
        version >= self.since && self.until.is_none_or(|until| version < until)
    }

    /// The argument counts (min, max) bpftrace `version` accepts; `None` for
    /// variables and for functions whose counts the table does not know.
    pub fn arity_in(&self, version: Version) -> Option<(usize, usize)> {
        self.arity
            .iter()
            .rev()
            .find(|a| a.since <= version)
            .or(self.arity.first())
            .map(|a| (usize::from(a.min), usize::from(a.max)))
    }

    const fn since(mut self, since: Version) -> Builtin {
        self.since = since;
        self
    }

    const fn until(mut self, until: Version) -> Builtin {
        self.until = Some(until);
        self
    }

    const fn args(mut self, arity: &'static [Arity]) -> Builtin {
        self.arity = arity;
        self
    }

    const fn yields(mut self, yields: Yields) -> Builtin {
        self.yields = yields;
        self
    }

    const fn unsafe_(mut self) -> Builtin {
        self.unsafe_ = true;
        self
    }
}

const OLD: Version = (0, 9);

const fn base(
    name: &'static str,
    kind: BuiltinKind,
    signature: &'static str,
    doc: &'static str,
    yields: Yields,
) -> Builtin {
    Builtin {
        name,
        kind,
        signature,
        doc,
        unsafe_: false,
        since: OLD,
        until: None,
        arity: &[],
        yields,
    }
}

const fn var(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    base(name, BuiltinKind::Variable, signature, doc, Yields::Int)
}

const fn func(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    base(name, BuiltinKind::Function, signature, doc, Yields::Nothing)
}

const fn agg(name: &'static str, signature: &'static str, doc: &'static str) -> Builtin {
    base(
        name,
        BuiltinKind::Aggregation,
        signature,
        doc,
        Yields::Aggregation,
    )
}

/// Exactly `n` arguments in every version.
macro_rules! exactly {
    ($n:expr) => {
        &[Arity {
            since: OLD,
            min: $n,
            max: $n,
        }]
    };
}

/// Between `min` and `max` arguments in every version.
macro_rules! between {
    ($min:expr, $max:expr) => {
        &[Arity {
            since: OLD,
            min: $min,
            max: $max,
        }]
    };
}

const ANY: u8 = u8::MAX;

/// The builtins of bpftrace 0.17.
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
    var("numaid", "numaid: uint32", "NUMA node ID.").since((0, 16)),
    var("cpu", "cpu: uint32", "CPU the probe fired on."),
    var(
        "comm",
        "comm: string[16]",
        "Name of the current process (task comm).",
    )
    .yields(Yields::Str),
    var("kstack", "kstack: kstack", "Kernel stack trace.").yields(Yields::Stack),
    var("ustack", "ustack: ustack", "User stack trace.").yields(Yields::Stack),
    var(
        "arg0",
        "arg0 .. argN: uint64",
        "Arguments of a kprobe or uprobe, as integers.",
    )
    .yields(Yields::Address),
    var(
        "sarg0",
        "sarg0 .. sargN: int64",
        "Stack arguments of a kprobe or uprobe.",
    )
    .until((0, 25))
    .yields(Yields::Address),
    var(
        "retval",
        "retval: uint64",
        "Return value in kretprobe, uretprobe and kretfunc.",
    )
    .yields(Yields::Address),
    var("func", "func: string", "Name of the traced function.").yields(Yields::Str),
    var(
        "probe",
        "probe: string",
        "Full name of the probe that fired.",
    )
    .yields(Yields::Str),
    var(
        "curtask",
        "curtask: struct task_struct *",
        "The current task_struct.",
    )
    .yields(Yields::Address),
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
        "username",
        "username: string",
        "Name of the user running the current task.",
    )
    .yields(Yields::Str),
    var(
        "ctx",
        "ctx: pointer",
        "The probe's raw context (struct pt_regs * in kprobes).",
    )
    .yields(Yields::Other),
    var(
        "args",
        "args: struct",
        "Typed arguments of a tracepoint, kfunc or usdt probe: args->NAME.",
    )
    .yields(Yields::Other),
    func(
        "printf",
        "printf(char *fmt, ...)",
        "Print formatted text; %d %u %x %s %c %p %lu %llu ...",
    )
    .args(between!(1, ANY)),
    func(
        "time",
        "time(char *fmt)",
        "Print the current time with strftime format.",
    )
    .args(between!(0, 1)),
    func(
        "join",
        "join(char *arr[] [, char *delim])",
        "Print an array of strings joined by delim (default space).",
    )
    .args(between!(1, 2)),
    func(
        "str",
        "str(char *s [, int length]): string",
        "Read a NUL-terminated string from kernel or user memory.",
    )
    .args(between!(1, 2))
    .yields(Yields::Str),
    func(
        "buf",
        "buf(void *d [, int length]): buffer",
        "Read a hex-formatted buffer of length bytes.",
    )
    .args(between!(1, 2))
    .yields(Yields::Buffer),
    func(
        "ksym",
        "ksym(void *p): string",
        "Resolve a kernel address to its symbol name.",
    )
    .args(exactly!(1))
    .yields(Yields::Str),
    func(
        "usym",
        "usym(void *p): string",
        "Resolve a user-space address to its symbol name.",
    )
    .args(exactly!(1))
    .yields(Yields::Str),
    func(
        "kaddr",
        "kaddr(char *name): uint64",
        "Address of a kernel symbol.",
    )
    .args(exactly!(1))
    .yields(Yields::Address),
    func(
        "uaddr",
        "uaddr(char *name): uint64",
        "Address of a user-space symbol (uprobes).",
    )
    .args(exactly!(1))
    .yields(Yields::Address),
    func(
        "reg",
        "reg(char *name): uint64",
        "Value of a CPU register, e.g. reg(\"ip\").",
    )
    .args(exactly!(1))
    .yields(Yields::Address),
    func(
        "ntop",
        "ntop([int af,] int|char[4]|char[16] addr): inet",
        "Format an IPv4 or IPv6 address as text.",
    )
    .args(between!(1, 2))
    .yields(Yields::Str),
    func(
        "pton",
        "pton(char *addr): char[4]|char[16]",
        "Parse an IPv4 or IPv6 address literal.",
    )
    .since((0, 16))
    .args(exactly!(1))
    .yields(Yields::Other),
    func(
        "cgroupid",
        "cgroupid(char *path): uint64",
        "Cgroup ID of a cgroup path.",
    )
    .args(exactly!(1))
    .yields(Yields::Int),
    func(
        "kstack",
        "kstack([StackMode mode,] [int limit]): kstack",
        "Kernel stack, e.g. kstack(perf, 5).",
    )
    .args(between!(0, 2))
    .yields(Yields::Stack),
    func(
        "ustack",
        "ustack([StackMode mode,] [int limit]): ustack",
        "User stack, e.g. ustack(bpftrace, 10).",
    )
    .args(between!(0, 2))
    .yields(Yields::Stack),
    func(
        "cat",
        "cat(char *filename)",
        "Print the contents of a file.",
    )
    .args(between!(1, ANY)),
    func(
        "exit",
        "exit()",
        "Stop tracing: detach probes, print maps, quit.",
    )
    .args(&[
        Arity {
            since: OLD,
            min: 0,
            max: 0,
        },
        Arity {
            since: (0, 21),
            min: 0,
            max: 1,
        },
    ]),
    func(
        "strncmp",
        "strncmp(char *s1, char *s2, int length): int",
        "Compare at most length bytes; 0 when equal.",
    )
    .args(exactly!(3))
    .yields(Yields::Int),
    func(
        "strcontains",
        "strcontains(char *haystack, char *needle): int",
        "1 if needle occurs in haystack, else 0.",
    )
    .since((0, 17))
    .args(exactly!(2))
    .yields(Yields::Int),
    func(
        "sizeof",
        "sizeof(TYPE | EXPR): uint64",
        "Size of a type or expression in bytes.",
    )
    .args(exactly!(1))
    .yields(Yields::Int),
    func(
        "print",
        "print(@map [, int top [, int div]]) | print(value)",
        "Print a map or a value now.",
    )
    .args(between!(1, 3)),
    func("clear", "clear(@map)", "Delete all keys of a map.").args(exactly!(1)),
    func("zero", "zero(@map)", "Set all values of a map to zero.").args(exactly!(1)),
    func("delete", "delete(@map[key])", "Delete one key of a map.").args(&[
        Arity {
            since: OLD,
            min: 1,
            max: 1,
        },
        Arity {
            since: (0, 21),
            min: 1,
            max: ANY,
        },
        Arity {
            since: (0, 22),
            min: 1,
            max: 2,
        },
    ]),
    func(
        "strftime",
        "strftime(char *fmt, int nsecs): timestamp",
        "Format a timestamp (used in printf with %s).",
    )
    .args(exactly!(2))
    .yields(Yields::Str),
    func(
        "path",
        "path(struct path *p): string",
        "Full path of a struct path (kfunc probes only).",
    )
    .args(&[
        Arity {
            since: OLD,
            min: 1,
            max: 1,
        },
        Arity {
            since: (0, 22),
            min: 1,
            max: 2,
        },
    ])
    .yields(Yields::Str),
    func(
        "macaddr",
        "macaddr(char[6] addr): macaddr",
        "Format a MAC address.",
    )
    .args(exactly!(1))
    .yields(Yields::Str),
    func(
        "kptr",
        "kptr(void *p): void *",
        "Mark a pointer as a kernel pointer.",
    )
    .args(exactly!(1))
    .yields(Yields::FirstArgument),
    func(
        "uptr",
        "uptr(void *p): void *",
        "Mark a pointer as a user-space pointer.",
    )
    .args(exactly!(1))
    .yields(Yields::FirstArgument),
    func(
        "cgroup_path",
        "cgroup_path(int cgroupid [, string filter]): cgroup_path",
        "Path of a cgroup ID.",
    )
    .since((0, 15))
    .args(between!(1, 2))
    .yields(Yields::Str),
    func(
        "skboutput",
        "skboutput(char *path, struct sk_buff *skb, uint64 length, uint64 offset)",
        "Write packet data to a pcap file.",
    )
    .args(exactly!(4))
    .yields(Yields::Int),
    func(
        "bswap",
        "bswap(int n): int",
        "Reverse the byte order of an integer (e.g. a __be16 port).",
    )
    .since((0, 15))
    .args(exactly!(1))
    .yields(Yields::Int),
    func(
        "strerror",
        "strerror(int errno): string",
        "The text of an errno value.",
    )
    .since((0, 16))
    .args(exactly!(1))
    .yields(Yields::Str),
    func(
        "debugf",
        "debugf(char *fmt, ...)",
        "Print to the kernel trace pipe (at most 3 arguments).",
    )
    .since((0, 16))
    .args(between!(1, 4)),
    func(
        "unwatch",
        "unwatch(void *addr)",
        "Remove a watchpoint set by a watchpoint probe.",
    )
    .args(exactly!(1)),
    func(
        "system",
        "system(char *fmt, ...)",
        "Run a shell command (needs --unsafe).",
    )
    .args(between!(1, ANY))
    .unsafe_(),
    func(
        "signal",
        "signal(char *sig | int sig)",
        "Send a signal to the current task (needs --unsafe).",
    )
    .args(exactly!(1))
    .unsafe_(),
    func(
        "override",
        "override(int rc)",
        "Override a kprobed function's return value (needs --unsafe).",
    )
    .args(exactly!(1))
    .unsafe_(),
    agg("count", "@x = count()", "Count events.").args(exactly!(0)),
    agg("sum", "@x = sum(int n)", "Sum of values.").args(exactly!(1)),
    agg("avg", "@x = avg(int n)", "Average of values.").args(exactly!(1)),
    agg("min", "@x = min(int n)", "Minimum value.").args(exactly!(1)),
    agg("max", "@x = max(int n)", "Maximum value.").args(exactly!(1)),
    agg("stats", "@x = stats(int n)", "Count, average and total.").args(exactly!(1)),
    agg("hist", "@x = hist(int n)", "Power-of-two histogram.").args(&[
        Arity {
            since: OLD,
            min: 1,
            max: 1,
        },
        Arity {
            since: (0, 20),
            min: 1,
            max: 2,
        },
    ]),
    agg(
        "lhist",
        "@x = lhist(int n, int min, int max, int step)",
        "Linear histogram.",
    )
    .args(exactly!(4)),
];

/// Builtins added after bpftrace 0.17, each with the version that added it.
pub const LATER_BUILTINS: &[Builtin] = &[
    var("jiffies", "jiffies: uint64", "Jiffies of the kernel.").since((0, 20)),
    var("ncpus", "ncpus: uint64", "Number of CPUs.").since((0, 24)),
    var(
        "usermode",
        "usermode: uint8",
        "1 if the probe fired in user mode.",
    )
    .since((0, 24)),
    func(
        "len",
        "len(@map | ustack | kstack): int",
        "Number of elements.",
    )
    .since((0, 20))
    .args(exactly!(1))
    .yields(Yields::Int),
    func(
        "has_key",
        "has_key(@map, key): bool",
        "Whether a map has a key.",
    )
    .since((0, 22))
    .args(exactly!(2))
    .yields(Yields::Int),
    func(
        "percpu_kaddr",
        "percpu_kaddr(char *name [, int cpu]): uint64",
        "Address of a per-CPU kernel variable.",
    )
    .since((0, 22))
    .args(between!(1, 2))
    .yields(Yields::Address),
    func(
        "errorf",
        "errorf(char *fmt, ...)",
        "Print an error with the source location.",
    )
    .since((0, 24))
    .args(between!(1, ANY)),
    func(
        "warnf",
        "warnf(char *fmt, ...)",
        "Print a warning with the source location.",
    )
    .since((0, 25))
    .args(between!(1, ANY)),
    func(
        "getopt",
        "getopt(char *name [, default [, char *description]])",
        "A named command-line option.",
    )
    .since((0, 24))
    .args(between!(1, 3))
    .yields(Yields::Other),
    func(
        "socket_cookie",
        "socket_cookie(struct sock *sk): uint64",
        "The cookie of a socket.",
    )
    .since((0, 24))
    .args(exactly!(1))
    .yields(Yields::Int),
    func(
        "nsecs",
        "nsecs([monotonic | boot | tai | sw_tai]): uint64",
        "Timestamp from the named clock.",
    )
    .since((0, 19))
    .args(between!(0, 1))
    .yields(Yields::Int),
    func(
        "pid",
        "pid([curr_ns | init]): uint32",
        "Process ID in the chosen namespace.",
    )
    .since((0, 24))
    .args(between!(0, 1))
    .yields(Yields::Int),
    func(
        "tid",
        "tid([curr_ns | init]): uint32",
        "Thread ID in the chosen namespace.",
    )
    .since((0, 24))
    .args(between!(0, 1))
    .yields(Yields::Int),
    agg(
        "tseries",
        "@x = tseries(int n, interval, num_intervals)",
        "Time series.",
    )
    .since((0, 24))
    .args(between!(3, 4)),
    func("strlen", "strlen(string s): int", "Length of a string.")
        .since((0, 25))
        .args(exactly!(1))
        .yields(Yields::Int),
    func(
        "strstr",
        "strstr(string haystack, string needle): int",
        "Index of needle in haystack.",
    )
    .since((0, 25))
    .args(exactly!(2))
    .yields(Yields::Int),
    func(
        "ppid",
        "ppid(): uint32",
        "Parent process ID (stdlib macro).",
    )
    .since((0, 24))
    .args(between!(0, 1))
    .yields(Yields::Int),
    func(
        "pcomm",
        "pcomm(): string",
        "Parent process name (stdlib macro).",
    )
    .since((0, 25))
    .args(between!(0, 1))
    .yields(Yields::Str),
    func(
        "fail",
        "fail(char *fmt, ...)",
        "Fail compilation with a message.",
    )
    .since((0, 25))
    .args(between!(1, ANY)),
    func(
        "static_assert",
        "static_assert(bool cond, char *msg)",
        "Fail compilation when cond is false.",
    )
    .since((0, 25))
    .args(between!(1, 2)),
    func(
        "signal_name",
        "signal_name(int sig): string",
        "Name of a signal.",
    )
    .since((0, 26))
    .args(exactly!(1))
    .yields(Yields::Str),
    func(
        "write_user",
        "write_user(void *dst, void *src, int len)",
        "Write to user-space memory (needs --unsafe).",
    )
    .since((0, 26))
    .args(exactly!(3))
    .unsafe_(),
];

/// Looks up a builtin of bpftrace 0.17 by name (`arg3` finds `arg0`).
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    let canonical = canonical_name(name);
    BUILTINS.iter().find(|b| b.name == canonical)
}

/// Every builtin named `name` (`arg3` finds `arg0`), whatever its version:
/// a name can be both a variable and, in later versions, a function (`pid`).
pub fn builtins_named(name: &str) -> impl Iterator<Item = &'static Builtin> + '_ {
    let canonical = canonical_name(name);
    BUILTINS
        .iter()
        .chain(LATER_BUILTINS)
        .filter(move |b| b.name == canonical)
}

/// `argN` -> `arg0`, `sargN` -> `sarg0`, anything else unchanged.
fn canonical_name(name: &str) -> &str {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if numbered("arg") {
        "arg0"
    } else if numbered("sarg") {
        "sarg0"
    } else {
        name
    }
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
        assert!(builtin("has_key").is_none());
        assert!(builtins_named("has_key").any(|b| b.since == (0, 22)));
    }

    #[test]
    fn arity_follows_the_version() {
        let hist = builtin("hist").unwrap();
        assert_eq!(hist.arity_in((0, 17)), Some((1, 1)));
        assert_eq!(hist.arity_in((0, 20)), Some((1, 2)));
        assert_eq!(hist.arity_in((0, 23)), Some((1, 2)));
        assert_eq!(builtin("lhist").unwrap().arity_in((0, 17)), Some((4, 4)));
        assert_eq!(builtin("pid").unwrap().arity_in((0, 17)), None);
    }

    #[test]
    fn availability_follows_the_version() {
        let sarg = builtin("sarg0").unwrap();
        assert!(sarg.available_in((0, 17)));
        assert!(!sarg.available_in((0, 25)));
        assert!(builtin("strcontains").unwrap().available_in((0, 17)));
        assert!(!builtin("strcontains").unwrap().available_in((0, 16)));
    }

    #[test]
    fn names_are_unique_per_kind() {
        let all: Vec<_> = BUILTINS.iter().chain(LATER_BUILTINS).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.name == b.name && a.kind == b.kind),
                    "{} listed twice",
                    a.name
                );
            }
        }
    }
}
