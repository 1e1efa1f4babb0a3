//! Parsing of tracefs text files: `available_events` and per-event `format` files.

use crate::catalog::Field;

/// Tracepoint names ("category:event") from `available_events`; malformed lines are skipped.
pub(crate) fn parse_available_events(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| is_event_name(l))
}

/// "category:event" with both parts non-empty, nothing else.
pub(crate) fn is_event_name(l: &str) -> bool {
    matches!(l.split_once(':'), Some((c, e)) if !c.is_empty() && !e.is_empty() && !e.contains(':'))
        && !l.contains(char::is_whitespace)
}

/// Typed fields of an event `format` file, without the `common_*` header fields (bpftrace hides
/// them from `args` too). Lines that do not parse are skipped, never fatal.
pub(crate) fn parse_format(text: &str) -> Vec<Field> {
    text.lines().filter_map(parse_field_line).collect()
}

/// One line: `\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;`
fn parse_field_line(line: &str) -> Option<Field> {
    let rest = line.trim().strip_prefix("field:")?;
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for (i, part) in rest.split(';').enumerate() {
        let part = part.trim();
        if i == 0 {
            decl = Some(part);
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse::<usize>().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse::<usize>().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = Some(v.trim() == "1");
        }
    }
    let (name, c_type) = split_declaration(decl?)?;
    if name.starts_with("common_") {
        return None;
    }
    Some(Field {
        name,
        c_type,
        offset: offset?,
        size: size?,
        signed: signed.unwrap_or(false),
    })
}

/// Splits a C declaration into (name, type): `const char * filename` -> ("filename",
/// "const char *"); `__u8 saddr[4]` -> ("saddr", "__u8[4]"); `__data_loc char[] name` ->
/// ("name", "__data_loc char[]"). The array suffix belongs to the type, as in BTF.
fn split_declaration(decl: &str) -> Option<(String, String)> {
    let decl = decl.trim();
    let (base, array) = match decl.strip_suffix(']') {
        Some(_) => {
            let open = decl.rfind('[')?;
            (decl[..open].trim_end(), &decl[open..])
        }
        None => (decl, ""),
    };
    let name_start = base
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .last()
        .map(|(i, _)| i)?;
    let name = &base[name_start..];
    let ty = base[..name_start].trim_end();
    if ty.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name.to_string(), format!("{ty}{array}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: &str = "name: sys_enter_openat\nID: 782\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
\tfield:__data_loc char[] name;\toffset:36;\tsize:4;\tsigned:1;\n\
\tfield:garbage\n\
\tfield:int;\toffset:1;\tsize:1;\tsigned:0;\n\
\nprint fmt: \"x\"\n";

    #[test]
    fn parses_fields_and_skips_common_and_garbage() {
        let f = parse_format(OPENAT);
        let got: Vec<_> = f
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.c_type.as_str(),
                    f.offset,
                    f.size,
                    f.signed,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("__syscall_nr", "int", 8, 4, true),
                ("filename", "const char *", 24, 8, false),
                ("saddr", "__u8[4]", 32, 4, false),
                ("name", "__data_loc char[]", 36, 4, true),
            ]
        );
    }

    #[test]
    fn available_events_skips_junk() {
        let t = "sched:sched_switch\n\nbogus\n:x\ny:\na:b:c\n syscalls:sys_enter_openat \n";
        assert_eq!(
            parse_available_events(t).collect::<Vec<_>>(),
            ["sched:sched_switch", "syscalls:sys_enter_openat"]
        );
    }

    #[test]
    fn odd_declarations_do_not_panic() {
        for d in [
            "", "[", "]", "x]", "[]", "int [", "*", "int 9x", "ünï x", "a b[ü]",
        ] {
            let _ = split_declaration(d);
        }
    }
}
