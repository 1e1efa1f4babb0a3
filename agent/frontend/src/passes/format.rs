//! bpftrace's printf format strings, as 0.17 reads them (`src/printf.h`): a
//! conversion is `%-?[0-9]*(\.[0-9]+)?` then a length (`hh h l ll j z t`) and
//! one of `d u o x X p`, or `s`, `c`, `r`, `rx`, `rh`. Anything else after a
//! `%` (`%i`, `%f`, `%+d`, `%*d`) is printed as text and takes no argument.
//! Shared by `printf` and `byte_order`, and by the verifier, which renders
//! the lines a program prints.

use crate::span::Span;

/// What a conversion expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expects {
    Integer,
    String,
    Buffer,
}

/// One conversion bpftrace recognises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Byte range in the format text, `%` included.
    pub start: usize,
    pub end: usize,
    /// `%-8d`: left-aligned.
    pub left: bool,
    /// The width's digits as written (`016` pads with zeros); empty: none.
    pub width: String,
    /// `%.3s`: the precision.
    pub precision: Option<usize>,
    /// Where the conversion letters (length included) start: `%-16lld` -> at `lld`.
    pub conv_start: usize,
    /// `lld`, `s`, `rx`.
    pub conv: String,
    pub expects: Expects,
}

impl Spec {
    /// Shows a decimal integer (`%d`, `%lu`, ...), the conversions where a
    /// byte-swapped value reads as a wrong number.
    pub fn is_decimal(&self) -> bool {
        self.conv.ends_with('d') || self.conv.ends_with('u')
    }
}

const LENGTHS: &[&str] = &["", "hh", "h", "l", "ll", "j", "z", "t"];
const INTEGER_CONVERSIONS: &[char] = &['d', 'u', 'o', 'x', 'X', 'p'];

/// The conversion token at the start of `rest`, longest first.
fn conversion(rest: &str) -> Option<(&str, Expects)> {
    for token in ["rx", "rh"] {
        if rest.starts_with(token) {
            return Some((&rest[..2], Expects::Buffer));
        }
    }
    match rest.chars().next()? {
        'r' => return Some((&rest[..1], Expects::Buffer)),
        's' => return Some((&rest[..1], Expects::String)),
        'c' => return Some((&rest[..1], Expects::Integer)),
        _ => {}
    }
    let mut best = None;
    for len in LENGTHS {
        if let Some(after) = rest.strip_prefix(len) {
            if after.starts_with(INTEGER_CONVERSIONS) {
                let n = len.len() + 1;
                if best.is_none_or(|(b, _): (usize, Expects)| n > b) {
                    best = Some((n, Expects::Integer));
                }
            }
        }
    }
    best.map(|(n, e)| (&rest[..n], e))
}

/// The conversions of `fmt`, found the way bpftrace's regex search finds them.
pub fn parse(fmt: &str) -> Vec<Spec> {
    let bytes = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let left = bytes.get(j) == Some(&b'-');
        if left {
            j += 1;
        }
        let width_start = j;
        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let width = &fmt[width_start..j];
        let mut precision = None;
        if bytes.get(j) == Some(&b'.') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
            let precision_start = j;
            while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            precision = fmt[precision_start..j].parse().ok();
        }
        match fmt.get(j..).and_then(conversion) {
            Some((conv, expects)) => {
                out.push(Spec {
                    start: i,
                    end: j + conv.len(),
                    left,
                    width: width.to_string(),
                    precision,
                    conv_start: j,
                    conv: conv.to_string(),
                    expects,
                });
                i = j + conv.len();
            }
            None => i += 1,
        }
    }
    out
}

/// A C conversion bpftrace does not know (it prints it as text), with the
/// bpftrace conversion to use instead when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Foreign {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub instead: Option<String>,
}

/// C conversions in `fmt` that bpftrace 0.17 does not recognise (`%i`, `%f`,
/// `%+d`, `%#x`, `%*d`, `%ld` is fine), outside the recognised ones.
pub(crate) fn foreign(fmt: &str, specs: &[Spec]) -> Vec<Foreign> {
    let bytes = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' || specs.iter().any(|s| s.start <= i && i < s.end) {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let mut j = i + 1;
        let flags_start = j;
        while bytes.get(j).is_some_and(|b| b"-+ #0'".contains(b)) {
            j += 1;
        }
        let flags = &fmt[flags_start..j];
        let width_start = j;
        while bytes
            .get(j)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'*' || *b == b'.')
        {
            j += 1;
        }
        let width = &fmt[width_start..j];
        let len_start = j;
        while bytes.get(j).is_some_and(|b| b"hlLqjzt".contains(b)) {
            j += 1;
        }
        let length = &fmt[len_start..j];
        let Some(&c) = bytes.get(j) else { break };
        if !b"diouxXeEfFgGaAcspn".contains(&c) {
            i += 1;
            continue;
        }
        let end = j + 1;
        let kept_flags: String = flags.chars().filter(|f| *f == '-').collect();
        let instead = match c {
            b'i' => Some(format!("%{kept_flags}{}{length}d", width.replace('*', ""))),
            b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b'a' | b'A' | b'n' => None,
            _ if width.contains('*') => None,
            _ => Some(format!("%{kept_flags}{width}{}", &fmt[len_start..end]))
                .filter(|s| s.as_str() != &fmt[i..end]),
        };
        out.push(Foreign {
            start: i,
            end,
            text: fmt[i..end].to_string(),
            instead,
        });
        i = end;
    }
    out
}

/// The source span of bytes `start..end` of a string literal whose span
/// (quotes included) is `literal` and whose text between the quotes is `raw`,
/// when the source really holds `raw` there.
pub(crate) fn span_in_literal(
    source: &str,
    literal: Span,
    raw: &str,
    start: usize,
    end: usize,
) -> Option<Span> {
    let inner_start = literal.start as usize + 1;
    if source.get(inner_start..inner_start + raw.len())? != raw || end > raw.len() {
        return None;
    }
    Some(Span::new(
        (inner_start + start) as u32,
        (inner_start + end) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convs(fmt: &str) -> Vec<String> {
        parse(fmt).into_iter().map(|s| s.conv).collect()
    }

    #[test]
    fn conversions_as_bpftrace_0_17_reads_them() {
        assert_eq!(
            convs("%d %s %-16s %5.2d %lld %llu %lx %p %c"),
            ["d", "s", "s", "d", "lld", "llu", "lx", "p", "c"]
        );
        assert_eq!(
            convs("%r %rx %rh %hhd %zu %jd %td"),
            ["r", "rx", "rh", "hhd", "zu", "jd", "td"]
        );
        // Not conversions for bpftrace: printed as text.
        assert!(convs("%i %f %+d % d %#x %*d %'d 100%").is_empty());
        // bpftrace has no %% escape: a conversion right after it still counts.
        assert_eq!(convs("%%d"), ["d"]);
        assert!(convs("50%% done").is_empty());
    }

    #[test]
    fn spans_and_conversion_starts() {
        let s = &parse("pid %-6d!")[0];
        assert_eq!((s.start, s.end, s.conv_start), (4, 8, 7));
    }

    #[test]
    fn foreign_conversions_and_their_replacements() {
        let fmt = "%i %+5d %f %#x %*d %d";
        let f = foreign(fmt, &parse(fmt));
        let got: Vec<(&str, Option<&str>)> = f
            .iter()
            .map(|f| (f.text.as_str(), f.instead.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("%i", Some("%d")),
                ("%+5d", Some("%5d")),
                ("%f", None),
                ("%#x", Some("%x")),
                ("%*d", None)
            ]
        );
    }
}
