//! bpftrace syntax highlighting as HTML with inline colours (notebook front ends
//! keep `style` attributes but drop stylesheets from outputs).

use kgent_output::render::escape;

const COMMENT: &str = "#6a737d";
const STRING: &str = "#22863a";
const NUMBER: &str = "#005cc5";
const KEYWORD: &str = "#d73a49";
const BUILTIN: &str = "#6f42c1";
const MAP: &str = "#e36209";
const VAR: &str = "#b08800";
const PROBE: &str = "#0550ae";

const KEYWORDS: &[&str] = &[
    "if", "else", "unroll", "while", "for", "return", "break", "continue", "struct", "union",
    "enum", "config", "import", "let", "macro",
];

/// The style of the `<pre>` a program is shown in.
pub const PRE_STYLE: &str = "padding:6px 8px;border-left:3px solid #0550ae;background:rgba(127,127,127,0.08);overflow-x:auto";

/// `program` as `<pre>` HTML with colours; the text is unchanged.
pub fn html(program: &str) -> String {
    format!(
        "<pre style=\"{PRE_STYLE}\"><code>{}</code></pre>",
        inner(program)
    )
}

/// Each line of `program` highlighted on its own (no `<pre>`): every tag
/// opened on a line is closed on it, so lines can be decorated separately.
pub fn html_lines(program: &str) -> Vec<String> {
    inner(program).split('\n').map(str::to_string).collect()
}

/// The coloured text of `program`; a coloured span never crosses a newline.
fn inner(program: &str) -> String {
    let mut out = String::with_capacity(program.len() * 2);
    let chars: Vec<char> = program.chars().collect();
    let mut i = 0;
    let mut depth = 0usize;
    let mut at_line_start = true;
    while i < chars.len() {
        let c = chars[i];
        let rest = |j: usize| chars.get(j).copied();
        // Comments.
        if c == '/' && rest(i + 1) == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            span(&mut out, COMMENT, &chars[i..end]);
            i = end;
            continue;
        }
        if c == '/' && rest(i + 1) == Some('*') {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .map_or(chars.len(), |j| j + 2);
            span(&mut out, COMMENT, &chars[i..end]);
            i = end;
            continue;
        }
        // A probe header: from the start of a top-level line to `{` or a predicate.
        if depth == 0 && at_line_start && (c.is_alphabetic() || c == '*') {
            let mut end = i;
            while end < chars.len() && !matches!(chars[end], '{' | '/' | '\n') {
                end += 1;
            }
            // `/` inside a uprobe path is part of the header: `uprobe:/bin/bash:readline`.
            while end < chars.len() && chars[end] == '/' && chars[end - 1] == ':' {
                end += 1;
                while end < chars.len() && !matches!(chars[end], '{' | '\n' | ' ') {
                    end += 1;
                }
            }
            let header: String = chars[i..end].iter().collect();
            let trimmed = header.trim_end();
            span(&mut out, PROBE, &chars[i..i + trimmed.chars().count()]);
            out.push_str(&escape::html(&header[trimmed.len()..]));
            i = end;
            at_line_start = false;
            continue;
        }
        if c == '"' {
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '"' && chars[end] != '\n' {
                if chars[end] == '\\' {
                    end += 1;
                }
                end += 1;
            }
            let end = (end + 1).min(chars.len());
            span(&mut out, STRING, &chars[i..end]);
            i = end;
            continue;
        }
        if c.is_ascii_digit() {
            let end = word_end(&chars, i);
            span(&mut out, NUMBER, &chars[i..end]);
            i = end;
            continue;
        }
        if c == '@' || c == '$' {
            let end = word_end(&chars, i + 1);
            span(&mut out, if c == '@' { MAP } else { VAR }, &chars[i..end]);
            i = end;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let end = word_end(&chars, i);
            let word: String = chars[i..end].iter().collect();
            let followed_by_call = chars[end..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            if KEYWORDS.contains(&word.as_str()) {
                span(&mut out, KEYWORD, &chars[i..end]);
            } else if kgent_agent::builtin(&word).is_some() || followed_by_call {
                span(&mut out, BUILTIN, &chars[i..end]);
            } else {
                out.push_str(&escape::html(&word));
            }
            i = end;
            continue;
        }
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '\n' {
            at_line_start = true;
        } else if !c.is_whitespace() {
            at_line_start = false;
        }
        out.push_str(&escape::html(c.encode_utf8(&mut [0; 4])));
        i += 1;
    }
    out
}

fn word_end(chars: &[char], start: usize) -> usize {
    let mut end = start;
    while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
        end += 1;
    }
    end
}

/// `text` in `colour`, one span per line (block comments span lines).
fn span(out: &mut String, colour: &str, text: &[char]) {
    let text: String = text.iter().collect();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if !line.is_empty() {
            out.push_str(&format!(
                "<span style=\"color:{colour}\">{}</span>",
                escape::html(line)
            ));
        }
        if lines.peek().is_some() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_tags(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn highlighting_keeps_the_text_and_colours_the_parts() {
        let program = "// opens\ntracepoint:syscalls:sys_enter_openat /comm == \"a<b\"/ {\n  @opens[comm] = count(); $x = 1;\n  if ($x > 0) { printf(\"%s\\n\", str(args->filename)); }\n}\nuprobe:/bin/bash:readline { @[pid] = 1; }\n";
        let html = html(program);
        assert_eq!(strip_tags(&html), program);
        assert!(
            html.contains(&format!(
                "<span style=\"color:{PROBE}\">tracepoint:syscalls:sys_enter_openat</span>"
            )),
            "{html}"
        );
        assert!(
            html.contains(&format!(
                "<span style=\"color:{PROBE}\">uprobe:/bin/bash:readline</span>"
            )),
            "{html}"
        );
        assert!(html.contains(&format!("<span style=\"color:{COMMENT}\">// opens</span>")));
        assert!(
            html.contains(&format!(
                "<span style=\"color:{STRING}\">&quot;a&lt;b&quot;</span>"
            )),
            "{html}"
        );
        assert!(html.contains(&format!("<span style=\"color:{MAP}\">@opens</span>")));
        assert!(html.contains(&format!("<span style=\"color:{KEYWORD}\">if</span>")));
        assert!(html.contains(&format!("<span style=\"color:{BUILTIN}\">count</span>")));
        assert!(html.contains(&format!("<span style=\"color:{BUILTIN}\">comm</span>")));
    }

    #[test]
    fn lines_are_highlighted_one_by_one() {
        let program = "/* two\nlines */ BEGIN {\n  printf(\"x\");\n}";
        let lines = html_lines(program);
        assert_eq!(lines.len(), 4);
        for (line, text) in lines.iter().zip(program.lines()) {
            assert_eq!(strip_tags(line), text);
            assert_eq!(
                line.matches("<span").count(),
                line.matches("</span>").count()
            );
        }
    }

    #[test]
    fn unterminated_strings_and_comments_do_not_lose_text() {
        for p in [
            "BEGIN { printf(\"abc",
            "/* never closed",
            "BEGIN { \"\\",
            "\u{e9}t\u{e9} {",
        ] {
            assert_eq!(strip_tags(&html(p)), p);
        }
    }
}
