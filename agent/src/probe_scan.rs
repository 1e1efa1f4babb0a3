//! A light scan of a program's probe headers (`provider:target { ... }`), enough to
//! refuse a probe type the kernel lacks before bpftrace spends seconds on it.
//! The full parser and checker replace this for everything else.

/// One attach point as written in the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachPoint {
    /// The provider as written (`t`, `tracepoint`, `kprobe`, `BEGIN`...).
    pub provider: String,
    /// The whole attach point (`tracepoint:syscalls:sys_enter_openat`).
    pub text: String,
    /// 1-based line in the program.
    pub line: usize,
}

/// Lists the attach points of top-level probe headers. Comments, strings and
/// everything inside blocks are skipped.
pub fn attach_points(program: &str) -> Vec<AttachPoint> {
    let mut points = Vec::new();
    let mut depth = 0usize;
    let mut header = String::new();
    let mut header_line = 1;
    let mut line = 1;
    let mut chars = program.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line += 1;
                if depth == 0 {
                    header.push(' ');
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
            }
            '{' => {
                if depth == 0 {
                    collect_header(&header, header_line, &mut points);
                    header.clear();
                }
                depth += 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    header_line = line;
                }
            }
            _ if depth == 0 => {
                if header.trim().is_empty() && !c.is_whitespace() {
                    header_line = line;
                    header.clear();
                }
                // `#include`/`#define` lines and `config = ...` are not probes.
                if c == '#' && header.trim().is_empty() {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            line += 1;
                            break;
                        }
                    }
                    continue;
                }
                header.push(c);
            }
            _ => {}
        }
    }
    points
}

fn collect_header(header: &str, line: usize, out: &mut Vec<AttachPoint>) {
    // A predicate `/.../` follows the attach points.
    let header = match header.find('/') {
        // `uprobe:/bin/bash:readline` has a path: only a slash after whitespace starts a predicate.
        Some(_) => split_predicate(header),
        None => header,
    };
    for part in header.split(',') {
        let text = part.trim();
        if text.is_empty() || text.starts_with("config") {
            continue;
        }
        let provider = text.split(':').next().unwrap_or(text).trim().to_string();
        out.push(AttachPoint {
            provider,
            text: text.to_string(),
            line,
        });
    }
}

fn split_predicate(header: &str) -> &str {
    let bytes = header.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'/' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &header[..i];
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: &str) -> Vec<String> {
        attach_points(p).into_iter().map(|a| a.text).collect()
    }

    #[test]
    fn headers_predicates_and_paths() {
        let p = "#include <linux/sched.h>\n// kprobe:not_me { }\nBEGIN { printf(\"kprobe:x { }\"); }\n\ntracepoint:syscalls:sys_enter_openat,\n  t:syscalls:sys_enter_open /comm == \"bash\"/ { @[comm] = count(); }\nuprobe:/bin/bash:readline { if (1) { } }\nEND { }";
        assert_eq!(
            texts(p),
            vec![
                "BEGIN",
                "tracepoint:syscalls:sys_enter_openat",
                "t:syscalls:sys_enter_open",
                "uprobe:/bin/bash:readline",
                "END"
            ]
        );
        let points = attach_points(p);
        assert_eq!(points[1].line, 5);
        assert_eq!(points[3].provider, "uprobe");
        assert_eq!(points[3].line, 7);
    }

    #[test]
    fn config_blocks_are_not_probes() {
        assert_eq!(
            texts("config = { max_map_keys = 10 }\nBEGIN { }"),
            vec!["BEGIN"]
        );
    }
}
