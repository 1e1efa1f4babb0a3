//! Whether a cell is ready to run (`is_complete_request`): balanced brackets, closed strings.

use crate::cell::{parse_cell, Cell};

/// The answer to `is_complete_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    /// More input is expected; the frontend may indent the next line with `indent`.
    Incomplete {
        indent: String,
    },
    /// Running it would only produce an error.
    Invalid,
}

/// Decides completeness of a cell. Only bpftrace programs can be incomplete; a malformed
/// magic line is invalid.
pub fn is_complete(code: &str) -> Completeness {
    match parse_cell(code) {
        Err(_) => Completeness::Invalid,
        Ok(Cell::Bpftrace { program, .. }) => program_completeness(&program),
        Ok(_) => Completeness::Complete,
    }
}

fn program_completeness(program: &str) -> Completeness {
    let mut stack: Vec<char> = Vec::new();
    let mut chars = program.chars().peekable();
    let mut in_block_comment = false;
    while let Some(c) = chars.next() {
        if in_block_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_block_comment = false;
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                in_block_comment = true;
            }
            '"' => {
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        // bpftrace strings cannot span lines.
                        '\n' => break,
                        _ => {}
                    }
                }
                if !closed {
                    return Completeness::Invalid;
                }
            }
            '{' | '(' | '[' => stack.push(c),
            '}' | ')' | ']' => {
                let open = match c {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                if stack.pop() != Some(open) {
                    return Completeness::Invalid;
                }
            }
            _ => {}
        }
    }
    if in_block_comment || !stack.is_empty() {
        let depth = stack.iter().filter(|c| **c == '{').count().max(1);
        return Completeness::Incomplete {
            indent: "    ".repeat(depth),
        };
    }
    Completeness::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_programs_are_complete() {
        assert_eq!(
            is_complete("%%bpftrace\nBEGIN { printf(\"}{\\n\"); exit(); } // {"),
            Completeness::Complete
        );
        assert_eq!(is_complete("%lsmagic"), Completeness::Complete);
        assert_eq!(
            is_complete("count opens by process"),
            Completeness::Complete
        );
    }

    #[test]
    fn open_blocks_are_incomplete_with_indent() {
        assert_eq!(
            is_complete("%%bpftrace\nBEGIN {\n  if (1) {"),
            Completeness::Incomplete {
                indent: "        ".into()
            }
        );
        assert!(matches!(
            is_complete("BEGIN { /* still"),
            Completeness::Incomplete { .. }
        ));
    }

    #[test]
    fn stray_closers_and_bad_magics_are_invalid() {
        assert_eq!(is_complete("%%bpftrace\nBEGIN } "), Completeness::Invalid);
        assert_eq!(
            is_complete("%%bpftrace\nBEGIN { (] }"),
            Completeness::Invalid
        );
        assert_eq!(
            is_complete("%%bpftrace\nBEGIN { printf(\"x); }"),
            Completeness::Invalid
        );
        assert_eq!(is_complete("%nosuchmagic"), Completeness::Invalid);
    }
}
