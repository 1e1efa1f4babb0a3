#!/usr/bin/env bash
# Checks the example library in this folder (see README.md for the format).
#
# For every <area>-<slug>.toml:
#   1. static checks (python3): TOML syntax, required keys and their types, the file
#      name, probe_types equal to the providers the program really uses, parameter
#      defaults present exactly once in the program, no unsafe builtins, wildcards
#      that match at most 50 probes;
#   2. a real load on this machine when every probe type of the program exists here
#      (tracepoint, uprobe, uretprobe, usdt, profile, interval, software, BEGIN, END):
#      `exit();` becomes the first statement of BEGIN (or `BEGIN { exit(); }` is
#      prepended) and `bpftrace -f json -e PROG` must exit 0 with no ERROR line other
#      than the RLIMIT_MEMLOCK notice;
#   3. otherwise (kprobe, kretprobe, hardware) a dry run, `bpftrace --emit-elf`, which
#      parses, type-checks against the kernel's BTF and generates code without
#      attaching; kfunc/kretfunc programs need a BPF trampoline even for that, so
#      where the kernel lacks one they get the static checks only and count as SKIP.
#
# Usage: bash check_examples.sh [FILE.toml ...]     (default: every *.toml here)
# Needs root, bpftrace and python3 >= 3.11. Exits non-zero if anything fails.

set -u
here=$(cd "$(dirname "$0")" && pwd)
BPFTRACE=${BPFTRACE:-bpftrace}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ $# -eq 0 ]; then
    set -- "$here"/*.toml
fi

# Is the BPF trampoline (kfunc) usable here? One probe load decides for all files.
if timeout 60 "$BPFTRACE" -e 'kfunc:vfs_read { exit(); } BEGIN { exit(); }' \
    >/dev/null 2>&1; then
    kfunc_ok=1
else
    kfunc_ok=0
fi

cat >"$tmp/static.py" <<'PY'
import os, re, subprocess, sys, tomllib

AREAS = {"basics", "files", "process", "sched", "memory", "block", "net", "syscalls",
         "latency", "user", "periodic", "security", "timers"}
KINDS = {"string", "comm", "pid", "integer", "duration_ms", "duration_s"}
OUTPUTS = {"lines", "map", "histogram", "periodic"}
PROVIDERS = {"tracepoint", "kprobe", "kretprobe", "kfunc", "kretfunc", "uprobe",
             "uretprobe", "usdt", "profile", "interval", "software", "hardware",
             "rawtracepoint", "BEGIN", "END"}
ALIASES = {"t": "tracepoint", "k": "kprobe", "kr": "kretprobe", "f": "kfunc",
           "fentry": "kfunc", "fr": "kretfunc", "fexit": "kretfunc", "u": "uprobe",
           "ur": "uretprobe", "U": "usdt", "p": "profile", "i": "interval",
           "s": "software", "h": "hardware", "rt": "rawtracepoint"}
LOADABLE = {"tracepoint", "uprobe", "uretprobe", "usdt", "profile", "interval",
            "software", "BEGIN", "END"}
KEYS = {"request": str, "description": str, "tags": list, "probe_types": list,
        "min_bpftrace": str, "output": str, "program": str}

path, out = sys.argv[1], sys.argv[2]
errors = []

def fail(msg):
    errors.append(msg)

name = os.path.basename(path)
m = re.fullmatch(r"([a-z]+)-[a-z0-9]+(?:-[a-z0-9]+)*\.toml", name)
if not m or m.group(1) not in AREAS:
    fail(f"file name must be <area>-<slug>.toml with area in {sorted(AREAS)}")

try:
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
except tomllib.TOMLDecodeError as e:
    print(f"TOML: {e}", file=sys.stderr)
    sys.exit(1)

for key, typ in KEYS.items():
    if not isinstance(doc.get(key), typ):
        fail(f"missing or mistyped key {key!r}")
for key in doc:
    if key not in KEYS and key != "parameters":
        fail(f"unknown key {key!r}")
if errors:
    print("; ".join(errors), file=sys.stderr)
    sys.exit(1)

prog = doc["program"]
if doc["output"] not in OUTPUTS:
    fail(f"output must be one of {sorted(OUTPUTS)}")
if not re.fullmatch(r"\d+\.\d+", doc["min_bpftrace"]):
    fail("min_bpftrace must look like 0.17")
if not doc["tags"] or not all(isinstance(t, str) and t for t in doc["tags"]):
    fail("tags must be a non-empty list of strings")
if not doc["request"].strip() or not doc["description"].strip():
    fail("request and description must not be empty")

# --- scan the program: blank out comments and string literals, then find the
# --- attach points in front of every top-level block.
def blank(text):
    res, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            res.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            res.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            res.append('"' + " " * (j - i - 1) + '"'); i = j + 1
        else:
            res.append(c); i += 1
    return "".join(res)

code = blank(prog)
depth, i, n = 0, 0, len(code)
headers = []           # (attach points, offset of the block's "{")
while i < n:
    c = code[i]
    if depth == 0 and not c.isspace() and c != "}":
        aps = []
        while True:
            while i < n and (code[i].isspace() or code[i] == ","):
                i += 1
            if i >= n or code[i] in "/{":
                break
            j = i
            while j < n and not code[j].isspace() and code[j] not in ",{":
                if code[j] == '"':              # quoted path, e.g. libstdc++
                    j = code.find('"', j + 1)
                    j = n if j < 0 else j
                j += 1
            aps.append(prog[i:j]); i = j
        if i < n and code[i] == "/":            # predicate: skip to the block
            while i < n and code[i] != "{":
                i += 1
        if i >= n or not aps:
            fail("could not parse the probe list")
            break
        headers.append((aps, i))
        depth, i = 1, i + 1
        continue
    if c == "{":
        depth += 1
    elif c == "}":
        depth -= 1
        if depth < 0:
            fail("unbalanced braces"); break
    i += 1
if depth != 0:
    fail("unbalanced braces")

used, attach_points = set(), []
for aps, _ in headers:
    for ap in aps:
        prov = ap.split(":", 1)[0]
        prov = ALIASES.get(prov, prov)
        if prov not in PROVIDERS:
            fail(f"unknown probe provider in {ap!r}")
        used.add(prov)
        attach_points.append(ap)
declared = doc["probe_types"]
if len(set(declared)) != len(declared):
    fail("probe_types has duplicates")
if set(declared) != used:
    fail(f"probe_types {sorted(declared)} but the program uses {sorted(used)}")

for bad in ("system", "signal", "override"):
    if re.search(rf"\b{bad}\s*\(", code):
        fail(f"unsafe builtin {bad}()")

# --- parameters: the default's literal must occur exactly once in the program.
params = doc.get("parameters", [])
if not isinstance(params, list):
    fail("parameters must be an array of tables")
    params = []
by_name = {}
for p in params:
    pname = p.get("name")
    kind = p.get("kind")
    if not isinstance(pname, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", pname):
        fail(f"parameter name {pname!r}"); continue
    if pname in by_name:
        fail(f"duplicate parameter {pname}")
    by_name[pname] = p
    extra = set(p) - {"name", "kind", "default", "length_of", "length_adjust"}
    if extra:
        fail(f"parameter {pname}: unknown keys {sorted(extra)}")
    if kind not in KINDS:
        fail(f"parameter {pname}: kind must be one of {sorted(KINDS)}"); continue
    d = p.get("default")
    if kind in ("string", "comm"):
        if not isinstance(d, str) or not d:
            fail(f"parameter {pname}: default must be a non-empty string"); continue
        if kind == "comm" and len(d) > 15:
            fail(f"parameter {pname}: a comm has at most 15 characters")
        lit = '"' + d.replace("\\", "\\\\").replace('"', '\\"') + '"'
        count = prog.count(lit)
    else:
        if not isinstance(d, int) or isinstance(d, bool):
            fail(f"parameter {pname}: default must be an integer"); continue
        count = len(re.findall(rf"(?<![\w.]){d}(?![\w.])", code))
    if count != 1:
        fail(f"parameter {pname}: default {d!r} occurs {count} times in the program (need 1)")
for p in params:
    ref = p.get("length_of")
    if ref is None:
        continue
    target = by_name.get(ref)
    if p.get("kind") != "integer" or target is None or target.get("kind") not in ("string", "comm"):
        fail(f"parameter {p.get('name')}: length_of must name a string parameter from an integer one")
    elif p.get("default") != len(target.get("default", "").encode()) + p.get("length_adjust", 0):
        fail(f"parameter {p.get('name')}: default is not the length of {ref}'s default"
             " (plus length_adjust)")

# --- wildcards: each one may match at most 50 probes on this machine.
for ap in attach_points:
    if "*" in ap or "?" in ap:
        try:
            r = subprocess.run([os.environ.get("BPFTRACE", "bpftrace"), "-l", ap],
                               capture_output=True, text=True, timeout=120)
            matches = [l for l in r.stdout.splitlines() if l.strip()]
            if len(matches) > 50:
                fail(f"{ap!r} matches {len(matches)} probes (limit 50)")
        except (OSError, subprocess.TimeoutExpired) as e:
            fail(f"could not list {ap!r}: {e}")

if errors:
    print("; ".join(errors), file=sys.stderr)
    sys.exit(1)

# --- the program to load: exit() first thing in BEGIN.
begin = [off for aps, off in headers if aps == ["BEGIN"]]
if any("BEGIN" in aps and len(aps) > 1 for aps, _ in headers):
    print("BEGIN shares its block with other probes", file=sys.stderr)
    sys.exit(1)
if begin:
    test = prog[:begin[0] + 1] + " exit();" + prog[begin[0] + 1:]
else:
    test = "BEGIN { exit(); }\n" + prog
with open(out, "w") as fh:
    fh.write(test)

if used <= LOADABLE:
    print("load")
elif used & {"kfunc", "kretfunc"}:
    print("kfunc")
else:
    print("dry")
PY

pass=0; fail=0; skip=0; loaded=0; dry=0
for f in "$@"; do
    name=$(basename "$f")
    if ! mode=$(python3 "$tmp/static.py" "$f" "$tmp/prog.bt" 2>"$tmp/static.err"); then
        echo "FAIL $name: $(tr '\n' ' ' <"$tmp/static.err")"
        fail=$((fail + 1)); continue
    fi
    if [ "$mode" = kfunc ] && [ "$kfunc_ok" = 0 ]; then
        echo "SKIP $name (kfunc/kretfunc: no BPF trampoline on this kernel; static checks passed)"
        skip=$((skip + 1)); continue
    fi
    prog=$(cat "$tmp/prog.bt")
    if [ "$mode" = dry ]; then
        timeout 60 "$BPFTRACE" --emit-elf "$tmp/prog.elf" -e "$prog" >/dev/null 2>"$tmp/err"
    else
        timeout 60 "$BPFTRACE" -f json -e "$prog" >/dev/null 2>"$tmp/err"
    fi
    rc=$?
    errs=$(grep 'ERROR' "$tmp/err" | grep -v 'RLIMIT_MEMLOCK')
    if [ $rc -ne 0 ] || [ -n "$errs" ]; then
        echo "FAIL $name (rc=$rc): $(grep -v RLIMIT_MEMLOCK "$tmp/err" | head -5 | tr '\n' ' ')"
        fail=$((fail + 1))
    elif [ "$mode" = dry ]; then
        echo "PASS $name (dry run: no kprobe/hardware here)"
        pass=$((pass + 1)); dry=$((dry + 1))
    else
        warns=$(grep -c 'WARNING' "$tmp/err")
        if [ "$warns" -gt 0 ]; then
            echo "PASS $name ($warns warnings: $(grep WARNING "$tmp/err" | head -1))"
        else
            echo "PASS $name"
        fi
        pass=$((pass + 1)); loaded=$((loaded + 1))
    fi
done

echo "TOTAL $(( pass + fail + skip )): $pass passed ($loaded loaded, $dry dry runs), $skip skipped, $fail failed"
[ $fail -eq 0 ]
