//! Escaping of strings that come from kernel data (comm names, keys, stacks)
//! for plain text, HTML/SVG and Markdown.

/// Makes control characters visible as `\xNN` (`\u{NN}` for C1 controls).
///
/// Keys come from the kernel: a comm name can hold an ESC sequence, which
/// Jupyter's text/plain renderer would interpret as colours, and C0 controls
/// are not allowed in XML at all. `\n` is kept only when `keep_newline`.
/// U+FFFE/U+FFFF (also illegal in XML) become U+FFFD.
fn visible_controls(s: &str, keep_newline: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '\n' if keep_newline => out.push('\n'),
            '\t' => out.push('\t'),
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{80}'..='\u{9f}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

fn needs_control_escape(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
    })
}

/// Plain text: control characters made visible, newlines kept.
pub(crate) fn plain(s: &str) -> std::borrow::Cow<'_, str> {
    if !needs_control_escape(s) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    visible_controls(s, true, &mut out);
    std::borrow::Cow::Owned(out)
}

/// HTML and XML text or attribute value. Newlines are kept (they are
/// whitespace in markup; callers that want line breaks use [`html_lines`]).
pub fn html(s: &str) -> String {
    let mut cleaned = String::with_capacity(s.len());
    visible_controls(s, true, &mut cleaned);
    let mut out = String::with_capacity(cleaned.len() + 8);
    for c in cleaned.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped HTML with each line of a multi-line value (a stack) on its own
/// line via `<br/>`; surrounding blank lines dropped.
pub(crate) fn html_lines(s: &str) -> String {
    let lines: Vec<String> = s.trim_matches('\n').lines().map(html).collect();
    lines.join("<br/>")
}

/// Markdown inline text (also safe inside a GFM table cell).
///
/// Markdown syntax characters get a backslash, HTML-significant ones become
/// entities, `$` is escaped because Jupyter renders `$...$` as maths, and
/// newlines become `<br>` because a table row must stay on one line.
pub fn markdown(s: &str) -> String {
    let mut cleaned = String::with_capacity(s.len());
    visible_controls(s.trim_matches('\n'), true, &mut cleaned);
    let mut out = String::with_capacity(cleaned.len() + 8);
    let mut lines = cleaned.lines().peekable();
    while let Some(line) = lines.next() {
        // Leading spaces of stack frames would be an indented code block
        // after <br>; they carry no meaning in a cell.
        let line = if cleaned.contains('\n') {
            line.trim()
        } else {
            line
        };
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '$' | '!' | '#' | '{' | '}' => {
                    out.push('\\');
                    out.push(c);
                }
                '\t' => out.push(' '),
                c => out.push(c),
            }
        }
        if lines.peek().is_some() {
            out.push_str("<br>");
        }
    }
    out
}

/// One-line text for a chart label: whitespace runs (including a stack's
/// newlines) collapse to one space; controls made visible. Not yet escaped.
pub(crate) fn one_line(s: &str) -> String {
    let mut cleaned = String::with_capacity(s.len());
    visible_controls(s, true, &mut cleaned);
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            html(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(html("a\u{1b}[31m"), "a\\x1b[31m");
        assert_eq!(html("\u{ffff}"), "\u{fffd}");
    }

    #[test]
    fn escapes_markdown() {
        assert_eq!(markdown("a|b*c_d`e<f>$g"), "a\\|b\\*c\\_d\\`e&lt;f&gt;\\$g");
        assert_eq!(markdown("\n  f1\n  f2\n"), "f1<br>f2");
    }

    #[test]
    fn plain_keeps_newlines_and_shows_controls() {
        assert_eq!(plain("a\nb"), "a\nb");
        assert_eq!(plain("\u{1b}[0m\u{85}"), "\\x1b[0m\\u{85}");
    }

    #[test]
    fn one_line_collapses_stacks() {
        assert_eq!(one_line("\n    f1+1\n    f2+2\n"), "f1+1 f2+2");
    }
}
