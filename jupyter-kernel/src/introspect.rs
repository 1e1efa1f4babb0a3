//! Completion, inspection and the probe/magic listings, from the kernel catalog and the
//! builtin and magic tables.

use jupyter_protocol::{Media, MediaType};
use kgent_agent::{attach_points, builtin, Builtin, BUILTINS};
use kgent_catalog::ProbeFields;
use kgent_magics::{find_magic, MagicKind, MAGICS};

use crate::knowledge::Knowledge;

/// Most completions offered at once.
const COMPLETION_LIMIT: usize = 200;

/// A completion answer, positions in Unicode characters as the protocol counts them.
pub struct Completion {
    pub matches: Vec<String>,
    pub cursor_start: usize,
    pub cursor_end: usize,
}

/// Byte index of a character position (clients count characters, Rust strings bytes).
fn byte_index(code: &str, char_pos: usize) -> usize {
    code.char_indices()
        .nth(char_pos)
        .map(|(i, _)| i)
        .unwrap_or(code.len())
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || "_:%*./-@$".contains(c)
}

/// The token ending at `end` (a byte index): its start byte.
fn token_start(code: &str, end: usize) -> usize {
    code[..end]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_token_char(*c))
        .last()
        .map(|(i, _)| i)
        .unwrap_or(end)
}

pub async fn complete(knowledge: &Knowledge, code: &str, cursor_pos: usize) -> Completion {
    let end = byte_index(code, cursor_pos);
    let mut start = token_start(code, end);
    let before = &code[..end];
    let mut token = &code[start..end];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let mut matches: Vec<String> = Vec::new();

    if token.starts_with('%') && start == line_start {
        matches = MAGICS
            .iter()
            .map(|m| m.spelled())
            .filter(|s| s.starts_with(token))
            .collect();
    } else if let Some(prefix) = field_prefix(before) {
        // `args->fi|`: fields of the probe whose block we are in.
        start = end - prefix.len();
        token = prefix;
        if let Some(fields) = enclosing_probe_fields(knowledge, code, end).await {
            matches = fields
                .fields
                .iter()
                .map(|f| f.name.clone())
                .filter(|n| n.starts_with(token))
                .collect();
        }
    } else if token.contains(':') {
        if let Ok(catalog) = knowledge.catalog().await {
            matches = catalog.complete(token, COMPLETION_LIMIT);
        }
    } else if token.starts_with('@') || token.starts_with('$') {
        // Names written elsewhere in the cell, not the one being typed.
        let token_end = code[end..]
            .char_indices()
            .find(|(_, c)| !is_token_char(*c))
            .map(|(i, _)| end + i)
            .unwrap_or(code.len());
        let elsewhere = format!("{} {}", &code[..start], &code[token_end..]);
        matches = names_in_cell(&elsewhere, token.chars().next().unwrap_or('@'))
            .into_iter()
            .filter(|n| n.starts_with(token) && n != token)
            .collect();
    } else if !token.is_empty() {
        let at_top_level = depth_at(code, end) == 0;
        if at_top_level {
            matches.extend(
                PROVIDERS
                    .iter()
                    .filter(|p| p.starts_with(token))
                    .map(|p| format!("{p}:")),
            );
            matches.extend(
                ["BEGIN", "END"]
                    .iter()
                    .filter(|p| p.starts_with(token))
                    .map(|s| s.to_string()),
            );
        } else {
            matches.extend(
                BUILTINS
                    .iter()
                    .filter(|b| b.name.starts_with(token))
                    .map(|b| b.name.to_string()),
            );
        }
    }
    matches.sort();
    matches.dedup();
    matches.truncate(COMPLETION_LIMIT);
    Completion {
        matches,
        cursor_start: code[..start].chars().count(),
        cursor_end: cursor_pos,
    }
}

const PROVIDERS: &[&str] = &[
    "tracepoint",
    "kprobe",
    "kretprobe",
    "kfunc",
    "kretfunc",
    "uprobe",
    "uretprobe",
    "usdt",
    "profile",
    "interval",
    "software",
    "hardware",
    "rawtracepoint",
];

/// `args->xyz` or `args.xyz` right before the cursor: returns `xyz`.
fn field_prefix(before: &str) -> Option<&str> {
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map(|(i, _)| i)
        .unwrap_or(before.len());
    let head = &before[..word_start];
    (head.ends_with("args->") || head.ends_with("args.")).then(|| &before[word_start..])
}

/// Brace depth at a byte position, ignoring strings and comments roughly.
fn depth_at(code: &str, end: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut prev = ' ';
    for c in code[..end].chars() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '{' if !in_str => depth += 1,
            '}' if !in_str => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    depth
}

async fn enclosing_probe_fields(
    knowledge: &Knowledge,
    code: &str,
    end: usize,
) -> Option<ProbeFields> {
    let program = strip_magic_line(code);
    let offset = code.len() - program.len();
    let line_of_cursor = program[..end.saturating_sub(offset).min(program.len())]
        .matches('\n')
        .count()
        + 1;
    let point = attach_points(program)
        .into_iter()
        .rfind(|p| p.line <= line_of_cursor && p.provider != "BEGIN" && p.provider != "END")?;
    let catalog = knowledge.catalog().await.ok()?;
    catalog.fields(&point.text)
}

fn strip_magic_line(code: &str) -> &str {
    if code.trim_start().starts_with("%%") {
        code.find('\n').map(|i| &code[i + 1..]).unwrap_or("")
    } else {
        code
    }
}

/// `@maps` or `$vars` written in the cell.
fn names_in_cell(code: &str, sigil: char) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in code.char_indices() {
        if c == sigil {
            let rest = &code[i + 1..];
            let len = rest
                .char_indices()
                .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
                .last()
                .map(|(j, c)| j + c.len_utf8())
                .unwrap_or(0);
            if len > 0 {
                out.push(format!("{sigil}{}", &rest[..len]));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What `inspect_request` (Shift-Tab) shows for the token under the cursor.
pub async fn inspect(knowledge: &Knowledge, code: &str, cursor_pos: usize) -> Option<Media> {
    let pos = byte_index(code, cursor_pos);
    // The token around the cursor, not only before it.
    let start = token_start(code, pos);
    let end = code[pos..]
        .char_indices()
        .find(|(_, c)| !is_token_char(*c))
        .map(|(i, _)| pos + i)
        .unwrap_or(code.len());
    let token = code[start..end].trim_end_matches(['.', ':']);
    describe(knowledge, token).await
}

/// Describes a probe, builtin or magic by name, for inspection and `NAME?`.
pub async fn describe(knowledge: &Knowledge, name: &str) -> Option<Media> {
    if name.is_empty() {
        return None;
    }
    if let Some(magic) = name.strip_prefix("%%").or_else(|| name.strip_prefix('%')) {
        let kind = if name.starts_with("%%") {
            MagicKind::Cell
        } else {
            MagicKind::Line
        };
        let m = find_magic(magic, kind).or_else(|| MAGICS.iter().find(|m| m.name == magic))?;
        let text = format!("{}\n\n{}", m.usage, m.summary);
        return Some(text_media(
            &text,
            &format!("`{}`\n\n{}", m.usage, m.summary),
        ));
    }
    if name.contains(':') {
        let catalog = knowledge.catalog().await.ok()?;
        let fields = catalog.fields(name)?;
        return Some(fields_media(&fields));
    }
    let name = name.trim_start_matches(['@', '$']);
    builtin(name).map(builtin_media)
}

fn builtin_media(b: &Builtin) -> Media {
    let plain = format!("{}\n\n{}", b.signature, b.doc);
    let md = format!("`{}`\n\n{}", b.signature, escape_md(b.doc));
    text_media(&plain, &md)
}

fn text_media(plain: &str, markdown: &str) -> Media {
    Media::new(vec![
        MediaType::Plain(plain.to_string()),
        MediaType::Markdown(markdown.to_string()),
    ])
}

/// A probe's typed fields, like `bpftrace -lv` prints them, as a table too.
pub fn fields_media(fields: &ProbeFields) -> Media {
    Media::new(vec![
        MediaType::Plain(fields_plain(fields)),
        MediaType::Markdown(fields_markdown(fields)),
        MediaType::Html(fields_html(fields)),
    ])
}

pub fn fields_plain(f: &ProbeFields) -> String {
    let mut s = format!("{}\n", f.probe);
    for field in &f.fields {
        let sep = if field.c_type.ends_with('*') { "" } else { " " };
        s.push_str(&format!("    {}{sep}{};\n", field.c_type, field.name));
    }
    if let Some(ret) = &f.ret {
        s.push_str(&format!("    {ret} retval;\n"));
    }
    s
}

fn fields_markdown(f: &ProbeFields) -> String {
    let mut s = format!("**`{}`**\n\n| field | type |\n|---|---|\n", f.probe);
    for field in &f.fields {
        s.push_str(&format!(
            "| `args->{}` | `{}` |\n",
            field.name, field.c_type
        ));
    }
    if let Some(ret) = &f.ret {
        s.push_str(&format!("| `retval` | `{ret}` |\n"));
    }
    s
}

fn fields_html(f: &ProbeFields) -> String {
    let mut s = format!(
        "<table><caption><code>{}</code></caption><thead><tr><th>field</th><th>type</th></tr></thead><tbody>",
        escape_html(&f.probe)
    );
    for field in &f.fields {
        s.push_str(&format!(
            "<tr><td><code>args-&gt;{}</code></td><td><code>{}</code></td></tr>",
            escape_html(&field.name),
            escape_html(&field.c_type)
        ));
    }
    if let Some(ret) = &f.ret {
        s.push_str(&format!(
            "<tr><td><code>retval</code></td><td><code>{}</code></td></tr>",
            escape_html(ret)
        ));
    }
    s.push_str("</tbody></table>");
    s
}

/// `%probes [-v] PATTERN`.
pub async fn probes_media(
    knowledge: &Knowledge,
    pattern: &str,
    verbose: bool,
    limit: usize,
) -> Result<Media, String> {
    let catalog = knowledge.catalog().await?;
    let found = catalog.search(pattern, limit);
    let mut plain = String::new();
    let mut md = String::new();
    let mut html = String::new();
    let heading = if found.total_matches > found.names.len() {
        format!(
            "{} of {} attach points matching `{pattern}` (use --limit N to see more)",
            found.names.len(),
            found.total_matches
        )
    } else {
        format!("{} attach points matching `{pattern}`", found.total_matches)
    };
    plain.push_str(&heading.replace('`', ""));
    plain.push('\n');
    md.push_str(&format!("{}\n\n", heading));
    html.push_str(&format!(
        "<p>{}</p>",
        escape_html(&heading.replace('`', ""))
    ));
    for w in catalog
        .unavailable_sources()
        .iter()
        .map(|p| p.to_string())
        .chain(found.warnings.iter().cloned())
    {
        plain.push_str(&format!("note: {w}\n"));
        md.push_str(&format!("> note: {}\n\n", escape_md(&w)));
        html.push_str(&format!("<p><em>note: {}</em></p>", escape_html(&w)));
    }
    // Fields for more than a screenful of probes would drown the list.
    let with_fields = verbose && found.names.len() <= 50;
    if verbose && !with_fields {
        plain.push_str("note: -v shows fields for at most 50 probes; narrow the pattern\n");
    }
    html.push_str("<ul>");
    for name in &found.names {
        let fields = if with_fields {
            catalog.fields(name)
        } else {
            None
        };
        match fields {
            Some(f) => {
                plain.push_str(&fields_plain(&f));
                md.push_str(&fields_markdown(&f));
                md.push('\n');
                html.push_str(&format!("<li>{}</li>", fields_html(&f)));
            }
            None => {
                plain.push_str(name);
                plain.push('\n');
                md.push_str(&format!("- `{name}`\n"));
                html.push_str(&format!("<li><code>{}</code></li>", escape_html(name)));
            }
        }
    }
    html.push_str("</ul>");
    Ok(Media::new(vec![
        MediaType::Plain(plain),
        MediaType::Markdown(md),
        MediaType::Html(html),
    ]))
}

/// `%lsmagic`.
pub fn lsmagic_media() -> Media {
    let line: Vec<String> = MAGICS
        .iter()
        .filter(|m| m.kind == MagicKind::Line)
        .map(|m| m.spelled())
        .collect();
    let cell: Vec<String> = MAGICS
        .iter()
        .filter(|m| m.kind == MagicKind::Cell)
        .map(|m| m.spelled())
        .collect();
    let plain = format!(
        "Available line magics:\n{}\n\nAvailable cell magics:\n{}\n",
        line.join("  "),
        cell.join("  ")
    );
    let mut html =
        String::from("<table><thead><tr><th>magic</th><th>what it does</th></tr></thead><tbody>");
    let mut md = String::from("| magic | what it does |\n|---|---|\n");
    for m in MAGICS {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            escape_html(m.usage),
            escape_html(m.summary)
        ));
        md.push_str(&format!("| `{}` | {} |\n", m.usage, escape_md(m.summary)));
    }
    html.push_str("</tbody></table>");
    Media::new(vec![
        MediaType::Plain(plain),
        MediaType::Markdown(md),
        MediaType::Html(html),
    ])
}

/// `%help [TOPIC]`.
pub fn help_media(topic: Option<&str>) -> Result<Media, String> {
    if let Some(t) = topic {
        let m = MAGICS
            .iter()
            .find(|m| m.name == t)
            .ok_or_else(|| format!("no help for `{t}`; %lsmagic lists the magics"))?;
        return Ok(text_media(
            &format!("{}\n\n{}", m.usage, m.summary),
            &format!("`{}`\n\n{}", m.usage, escape_md(m.summary)),
        ));
    }
    let plain = "\
Kgent runs bpftrace programs in this notebook and streams what they print.

  %%bpftrace                     first line of a cell holding a bpftrace program
  %%bpftrace --timeout 5s        stop it after five seconds (the stop button stops it too)
  %probes t:syscalls:*open*      list attach points of the running kernel; -v adds fields
  tracepoint:sched:sched_switch? show a probe's typed fields (Shift-Tab works too)
  %lsmagic                       all magics; %help MAGIC explains one

printf output appears as it happens; maps are drawn as tables, hist() and lhist() as charts,
when the program prints them or when it ends. The full output of each run is kept in a file
whose path the cell shows. `kgent doctor` in a terminal tells what this machine supports.
";
    let mut md = String::from("Kgent runs **bpftrace** programs in this notebook and streams what they print.\n\n| magic | what it does |\n|---|---|\n");
    for m in MAGICS {
        md.push_str(&format!("| `{}` | {} |\n", m.usage, escape_md(m.summary)));
    }
    md.push_str("\n`PROBE?` in a cell (or Shift-Tab on it) shows a probe's typed fields. `kgent doctor` in a terminal tells what this machine supports.\n");
    Ok(text_media(plain, &md))
}

pub use kgent_output::render::escape::{html as escape_html, markdown as escape_md};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_field_prefixes() {
        let code = "BEGIN { prin";
        assert_eq!(&code[token_start(code, code.len())..], "prin");
        assert_eq!(
            field_prefix("t:syscalls:sys_enter_openat { printf(\"%s\", args->fil"),
            Some("fil")
        );
        assert_eq!(field_prefix("x = args.fl"), Some("fl"));
        assert_eq!(field_prefix("x = foo->fl"), None);
        assert_eq!(
            names_in_cell("@a[1] = count(); @bb = 1; $x = @a[2];", '@'),
            vec!["@a", "@bb"]
        );
        assert_eq!(depth_at("BEGIN { \"{\" ", 12), 1);
    }

    #[tokio::test]
    async fn completes_magics_and_builtins() {
        let k = Knowledge::new();
        let c = complete(&k, "%lsm", 4).await;
        assert_eq!(c.matches, vec!["%lsmagic"]);
        assert_eq!(c.cursor_start, 0);
        let code = "%%bpftrace\nBEGIN { prin";
        let c = complete(&k, code, code.chars().count()).await;
        assert_eq!(c.matches, vec!["print", "printf"]);
        assert_eq!(c.cursor_end - c.cursor_start, 4);
        let code = "%%bpftrace\nBEGIN { @count = 1; @co";
        let c = complete(&k, code, code.chars().count()).await;
        assert_eq!(c.matches, vec!["@count"]);
        let c = complete(&k, code, code.chars().count() - 1).await;
        assert_eq!(c.matches, vec!["@count"]);
        let c = complete(&k, "tracepo", 7).await;
        assert_eq!(c.matches, vec!["tracepoint:"]);
    }

    #[test]
    fn help_and_lsmagic_cover_every_magic() {
        let Some(MediaType::Plain(text)) = lsmagic_media().content.first().cloned() else {
            panic!("no plain text");
        };
        for m in MAGICS {
            assert!(text.contains(&m.spelled()), "{}", m.name);
        }
        assert!(help_media(Some("nosuch")).is_err());
        assert!(help_media(Some("probes")).is_ok());
    }
}
