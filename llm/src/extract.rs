//! `extract_program`: the bpftrace program inside an LLM reply, if there is one.
//!
//! Models answer in many shapes: a ```` ```bpftrace ```` fence after some prose,
//! a fence with no language or the wrong one (`c`), a shell line
//! `sudo bpftrace -e '...'`, a bare program, a reply cut off inside its fence
//! (token limit), or a `<think>` section first (reasoning models). This finds
//! the program in all of them and says `None` when there is none, so the agent
//! can tell "no program" from "a program that fails to parse".

/// Probe types (long and short forms) that can start a bpftrace probe line.
const PROBE_TYPES: &[&str] = &[
    "kprobe",
    "kretprobe",
    "uprobe",
    "uretprobe",
    "tracepoint",
    "rawtracepoint",
    "usdt",
    "profile",
    "interval",
    "software",
    "hardware",
    "watchpoint",
    "asyncwatchpoint",
    "kfunc",
    "kretfunc",
    "fentry",
    "fexit",
    "iter",
    "self",
    "k",
    "kr",
    "u",
    "ur",
    "t",
    "rt",
    "U",
    "p",
    "i",
    "s",
    "h",
    "w",
    "aw",
    "f",
    "fr",
    "it",
];

/// The bpftrace program in `reply`: the first fenced block that holds one
/// (a `bpftrace`/`bt` tag counts as holding one), else the program of a
/// `bpftrace -e '...'` command, else a bare program in the text. `None` when
/// the reply has no program (prose only, or only output samples).
pub fn extract_program(reply: &str) -> Option<String> {
    let reply = strip_think(reply);
    let blocks = fenced_blocks(&reply);
    for block in &blocks {
        let lang = block.lang.to_ascii_lowercase();
        let body = block.body.trim_matches('\n').trim_end();
        if body.trim().is_empty() {
            continue;
        }
        if matches!(lang.as_str(), "bpftrace" | "bt") {
            return Some(body.to_string());
        }
        if let Some(program) = dash_e_program(body) {
            return Some(program);
        }
        if looks_like_bpftrace(body) {
            return Some(body.to_string());
        }
    }
    // Outside fences only; a fenced output sample must not be read as a program.
    let prose = without_blocks(&reply, &blocks);
    if let Some(program) = dash_e_program(&prose) {
        return Some(program);
    }
    bare_program(&prose)
}

/// Whether `code` reads as a bpftrace program: some line starts a probe
/// (`kprobe:...`, `tracepoint:...`, `BEGIN`, ...) and a `{` follows it.
pub fn looks_like_bpftrace(code: &str) -> bool {
    let lines: Vec<&str> = code.lines().collect();
    lines
        .iter()
        .enumerate()
        .any(|(i, line)| is_probe_line(line) && lines[i..].iter().any(|l| l.contains('{')))
}

struct Block {
    lang: String,
    body: String,
    /// Byte range of the whole block (fences included) in the reply.
    span: std::ops::Range<usize>,
}

/// Fenced code blocks (```` ``` ```` or `~~~`, up to three spaces of indent);
/// an unterminated fence runs to the end of the reply.
fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, String, usize, usize)> = None; // fence char, len, lang, block start, body start
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim_start_matches(' ');
        let fence = trimmed
            .chars()
            .next()
            .filter(|c| *c == '`' || *c == '~')
            .map(|c| (c, trimmed.chars().take_while(|&x| x == c).count()))
            .filter(|&(_, n)| n >= 3 && indent <= 3);
        match (&open, fence) {
            (None, Some((c, n))) => {
                let info = trimmed[n * c.len_utf8()..].trim();
                let lang = info
                    .split(|ch: char| ch.is_whitespace() || ch == '{' || ch == ',')
                    .next()
                    .unwrap_or("")
                    .to_string();
                open = Some((c, n, lang, start, pos));
            }
            (Some((c0, n0, _, _, _)), Some((c, n)))
                if c == *c0 && n >= *n0 && trimmed[n * c.len_utf8()..].trim().is_empty() =>
            {
                if let Some((_, _, lang, block_start, body_start)) = open.take() {
                    blocks.push(Block {
                        lang,
                        body: text[body_start..start].to_string(),
                        span: block_start..pos,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some((_, _, lang, block_start, body_start)) = open {
        blocks.push(Block {
            lang,
            body: text[body_start..].to_string(),
            span: block_start..text.len(),
        });
    }
    blocks
}

fn without_blocks(text: &str, blocks: &[Block]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for b in blocks {
        out.push_str(&text[at..b.span.start]);
        out.push('\n');
        at = b.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Removes `<think>...</think>` sections; an unclosed one runs to the end.
fn strip_think(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<think>") {
        out.push_str(&rest[..i]);
        match rest[i..].find("</think>") {
            Some(j) => rest = &rest[i + j + "</think>".len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The program of the first `bpftrace ... -e '<program>'` in `text`.
fn dash_e_program(text: &str) -> Option<String> {
    let mut search = 0;
    while let Some(i) = text[search..].find("bpftrace") {
        let after = search + i + "bpftrace".len();
        search = after;
        // The -e must belong to this command line, before any pipe or newline.
        let line_end = text[after..]
            .find(['\n', '|', ';'])
            .map_or(text.len(), |j| after + j);
        let Some(e) = text[after..line_end].find("-e") else {
            continue;
        };
        let arg = text[after + e + 2..].trim_start();
        let quote = arg.chars().next()?;
        if quote != '\'' && quote != '"' {
            continue;
        }
        let body = &arg[1..];
        let end = if quote == '\'' {
            body.find('\'')
        } else {
            // In double quotes a backslash escapes the next character.
            let mut escaped = false;
            body.char_indices().find_map(|(k, ch)| {
                let hit = ch == '"' && !escaped;
                escaped = ch == '\\' && !escaped;
                hit.then_some(k)
            })
        };
        let program = match end {
            Some(k) => &body[..k],
            None => body,
        };
        let program = if quote == '"' {
            program.replace("\\\"", "\"").replace("\\$", "$")
        } else {
            program.to_string()
        };
        if looks_like_bpftrace(&program) {
            return Some(program.trim().to_string());
        }
    }
    None
}

/// A program written straight into the reply: from the first probe line
/// (with the comments just above it) to the `}` that closes the last probe.
fn bare_program(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| is_probe_line(l))?;
    // Take the comment, shebang and #include lines directly above the first probe.
    let mut start = first;
    while start > 0 {
        let above = lines[start - 1].trim_start();
        if above.starts_with("//")
            || above.starts_with("#!")
            || above.starts_with("#include")
            || above.starts_with("#define")
        {
            start -= 1;
        } else {
            break;
        }
    }
    let mut depth: i64 = 0;
    let mut end = None;
    let mut opened = false;
    for (i, line) in lines.iter().enumerate().skip(first) {
        if depth == 0 && opened && !is_probe_line(line) && !line.trim().is_empty() {
            // Past the last probe: only comments may continue the program.
            if !line.trim_start().starts_with("//") {
                break;
            }
        }
        for ch in code_chars(line) {
            match ch {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                    }
                }
                _ => {}
            }
        }
    }
    let end = match (end, opened) {
        (Some(end), _) if depth <= 0 => end,
        // Cut off mid-probe (token limit): hand over what there is, the parser will say.
        (_, true) => lines.len() - 1,
        _ => return None,
    };
    let program = lines[start..=end].join("\n");
    Some(program.trim().to_string()).filter(|p| !p.is_empty())
}

/// The characters of a line outside strings and `//` comments, for brace counting.
fn code_chars(line: &str) -> impl Iterator<Item = char> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    let mut prev = ' ';
    let mut comment = false;
    line.chars().filter(move |&ch| {
        if comment {
            return false;
        }
        let keep = if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
            false
        } else if ch == '"' {
            in_string = true;
            false
        } else if ch == '/' && prev == '/' {
            comment = true;
            false
        } else {
            true
        };
        prev = ch;
        keep
    })
}

/// Whether a line starts a probe: `BEGIN`, `END`, or `<type>:...`.
fn is_probe_line(line: &str) -> bool {
    let t = line.trim_start();
    let word: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let rest = &t[word.len()..];
    if word == "BEGIN" || word == "END" {
        return rest.is_empty() || rest.starts_with([' ', '\t', '{', ',', '/']);
    }
    // `type:` followed by something that is not a space: "t:syscalls:..." yes, "Note: ..." no.
    PROBE_TYPES.contains(&word.as_str())
        && rest.starts_with(':')
        && rest[1..].chars().next().is_some_and(|c| !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENSNOOP: &str = "tracepoint:syscalls:sys_enter_openat\n{\n  printf(\"%s %s\\n\", comm, str(args.filename));\n}";

    #[test]
    fn prose_then_fenced_program() {
        let reply = format!(
            "Sure! This traces every file open:\n\n```bpftrace\n{OPENSNOOP}\n```\n\nRun it with `sudo bpftrace file.bt`."
        );
        assert_eq!(extract_program(&reply).as_deref(), Some(OPENSNOOP));
    }

    #[test]
    fn bt_and_c_tags() {
        let bt = "```bt\nBEGIN { printf(\"hi\\n\"); exit(); }\n```";
        assert_eq!(
            extract_program(bt).as_deref(),
            Some("BEGIN { printf(\"hi\\n\"); exit(); }")
        );
        let c = format!("Here you go:\n```c\n{OPENSNOOP}\n```");
        assert_eq!(extract_program(&c).as_deref(), Some(OPENSNOOP));
    }

    #[test]
    fn first_of_two_fences_that_is_a_program() {
        let reply = format!(
            "The output will look like this:\n\n```\n@[bash]: 12\n@[sshd]: 40\n```\n\n\
             and the program is:\n\n```\n{OPENSNOOP}\n```\n\nA variant with a filter:\n\n\
             ```bpftrace\ntracepoint:syscalls:sys_enter_openat /comm == \"bash\"/ {{ @[comm] = count(); }}\n```"
        );
        assert_eq!(extract_program(&reply).as_deref(), Some(OPENSNOOP));
    }

    #[test]
    fn fence_without_language() {
        let reply = "```\nkprobe:vfs_read { @bytes = hist(arg2); }\n```";
        assert_eq!(
            extract_program(reply).as_deref(),
            Some("kprobe:vfs_read { @bytes = hist(arg2); }")
        );
    }

    #[test]
    fn unterminated_fence_is_taken_to_the_end() {
        // A reply cut off by the token limit.
        let reply = "Here it is:\n```bpftrace\nkprobe:do_nanosleep\n{\n  @[comm] = count();\n";
        assert_eq!(
            extract_program(reply).as_deref(),
            Some("kprobe:do_nanosleep\n{\n  @[comm] = count();")
        );
    }

    #[test]
    fn prose_only_has_no_program() {
        assert_eq!(
            extract_program("I can't trace that without more detail. Which process do you mean?"),
            None
        );
        assert_eq!(extract_program(""), None);
        // A prose line with a colon is not a probe.
        assert_eq!(
            extract_program("Note: tracepoints are stable.\nUse: the syscalls category."),
            None
        );
        // An output sample alone is not a program.
        assert_eq!(
            extract_program("Expected output:\n```\n@[bash]: 3\n```"),
            None
        );
        // Neither is C code for BCC.
        let bcc = "```c\nint kprobe__do_sys_open(struct pt_regs *ctx) {\n  return 0;\n}\n```";
        assert_eq!(extract_program(bcc), None);
    }

    #[test]
    fn program_with_comments() {
        let program = "// Count syscalls by process.\n// Stop with Ctrl-C.\ntracepoint:raw_syscalls:sys_enter\n{\n  @[comm] = count(); // per process\n}";
        let fenced = format!("```bpftrace\n{program}\n```");
        assert_eq!(extract_program(&fenced).as_deref(), Some(program));
        // Bare, the comments above the probe belong to it.
        assert_eq!(extract_program(program).as_deref(), Some(program));
    }

    #[test]
    fn bare_program_and_bare_program_in_prose() {
        assert_eq!(extract_program(OPENSNOOP).as_deref(), Some(OPENSNOOP));
        let two = "BEGIN { printf(\"Tracing... Hit Ctrl-C to end.\\n\"); }\n\nkretprobe:vfs_read { @ret = hist(retval); }\n\nEND { clear(@ret); }";
        assert_eq!(extract_program(two).as_deref(), Some(two));
        let reply =
            format!("Here is the program:\n\n{OPENSNOOP}\n\nIt prints each file as it is opened.");
        assert_eq!(extract_program(&reply).as_deref(), Some(OPENSNOOP));
    }

    #[test]
    fn shell_command_with_dash_e() {
        let reply = "Run this:\n```bash\nsudo bpftrace -e 'kprobe:do_nanosleep { printf(\"%d\\n\", pid); }'\n```";
        assert_eq!(
            extract_program(reply).as_deref(),
            Some("kprobe:do_nanosleep { printf(\"%d\\n\", pid); }")
        );
        let inline = "Try `bpftrace -e \"BEGIN { printf(\\\"hi\\\"); }\"` in a shell.";
        assert_eq!(
            extract_program(inline).as_deref(),
            Some("BEGIN { printf(\"hi\"); }")
        );
    }

    #[test]
    fn think_sections_are_ignored() {
        let reply = format!(
            "<think>\nMaybe ```\nkprobe:wrong {{ }}\n``` no.\n</think>\n```bpftrace\n{OPENSNOOP}\n```"
        );
        assert_eq!(extract_program(&reply).as_deref(), Some(OPENSNOOP));
        assert_eq!(extract_program("<think>\nkprobe:x { } hmm"), None);
    }

    #[test]
    fn any_cut_off_reply_is_handled() {
        // Replies end anywhere when the token budget runs out; none may panic.
        let reply = format!(
            "<think>plan</think>Voilà — ``` ```bpftrace\n// ü comment\n{OPENSNOOP}\n```\n\
             `bpftrace -e \"BEGIN {{ printf(\\\"x\\\"); }}\"` ~~~\nEND {{ }}\n"
        );
        for (i, _) in reply.char_indices() {
            let _ = extract_program(&reply[..i]);
        }
        assert!(extract_program(&reply).is_some());
    }

    #[test]
    fn tilde_fences_and_braces_in_strings() {
        let program = "BEGIN\n{\n  printf(\"}\\n\");\n}";
        assert_eq!(
            extract_program(&format!("~~~\n{program}\n~~~")).as_deref(),
            Some(program)
        );
        let reply = format!("{program}\nThat prints a brace.");
        assert_eq!(extract_program(&reply).as_deref(), Some(program));
    }
}
