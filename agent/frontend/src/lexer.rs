//! The lexer: tokens on demand from a byte offset, in two modes.
//!
//! bpftrace's lexing depends on context, so the parser drives it: expression
//! mode (`next_token`) for code, and attach-point mode (`lex_attach_point`)
//! for probe headers, whose text (`uprobe:/bin/bash:readline`,
//! `kprobe:vfs_*`, `hardware:cache-misses:1e6`) is not expression syntax.
//! Whether `/` ends a predicate and whether `(` starts a cast are decided by
//! the parser, which can look ahead. Lexing never fails: problems are flags on
//! tokens that the parser turns into diagnostics when it consumes them.

use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Ident,
    /// `$name`
    Var,
    /// `$1`, `$2`, ...
    Positional,
    /// `$#`
    PositionalCount,
    /// `@name` or `@`
    Map,
    /// `[0-9][0-9A-Za-z_]*`: validated by the parser, which can say what is wrong.
    Int,
    Str,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Semi,
    Comma,
    Colon,
    Dot,
    DotDot,
    Arrow,
    Question,
    Assign,
    PlusAssign,
    MinusAssign,
    StarAssign,
    SlashAssign,
    PercentAssign,
    AmpAssign,
    PipeAssign,
    CaretAssign,
    ShlAssign,
    ShrAssign,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    AndAnd,
    OrOr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Bang,
    Tilde,
    PlusPlus,
    MinusMinus,
    Hash,
    /// A character that starts no token (including a lone `$`).
    Unknown,
    Eof,
}

impl TokenKind {
    /// How the token is named in "expected X, found Y" messages, for fixed tokens.
    pub fn describe(self) -> &'static str {
        use TokenKind::*;
        match self {
            Ident => "identifier",
            Var => "variable",
            Positional => "positional parameter",
            PositionalCount => "`$#`",
            Map => "map",
            Int => "integer",
            Str => "string",
            LParen => "`(`",
            RParen => "`)`",
            LBrace => "`{`",
            RBrace => "`}`",
            LBracket => "`[`",
            RBracket => "`]`",
            Semi => "`;`",
            Comma => "`,`",
            Colon => "`:`",
            Dot => "`.`",
            DotDot => "`..`",
            Arrow => "`->`",
            Question => "`?`",
            Assign => "`=`",
            PlusAssign => "`+=`",
            MinusAssign => "`-=`",
            StarAssign => "`*=`",
            SlashAssign => "`/=`",
            PercentAssign => "`%=`",
            AmpAssign => "`&=`",
            PipeAssign => "`|=`",
            CaretAssign => "`^=`",
            ShlAssign => "`<<=`",
            ShrAssign => "`>>=`",
            EqEq => "`==`",
            NotEq => "`!=`",
            Lt => "`<`",
            Le => "`<=`",
            Gt => "`>`",
            Ge => "`>=`",
            Shl => "`<<`",
            Shr => "`>>`",
            AndAnd => "`&&`",
            OrOr => "`||`",
            Plus => "`+`",
            Minus => "`-`",
            Star => "`*`",
            Slash => "`/`",
            Percent => "`%`",
            Amp => "`&`",
            Pipe => "`|`",
            Caret => "`^`",
            Bang => "`!`",
            Tilde => "`~`",
            PlusPlus => "`++`",
            MinusMinus => "`--`",
            Hash => "`#`",
            Unknown => "unknown character",
            Eof => "end of file",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
    /// A line break lies between the previous token and this one.
    pub newline_before: bool,
    /// A string literal without its closing quote.
    pub unterminated: bool,
    /// The start of an unterminated `/* ...` comment just before this token.
    pub unterminated_comment: Option<u32>,
}

/// Where trivia (whitespace and comments) starting at `pos` ends.
pub struct Trivia {
    pub end: usize,
    pub newline: bool,
    pub unterminated_comment: Option<u32>,
}

pub fn skip_trivia(src: &str, mut pos: usize) -> Trivia {
    let bytes = src.as_bytes();
    let mut newline = false;
    let mut unterminated_comment = None;
    while pos < bytes.len() {
        match bytes[pos] {
            b'\n' => {
                newline = true;
                pos += 1;
            }
            b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' => pos += 1,
            b'/' if bytes.get(pos + 1) == Some(&b'/') => {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
            }
            b'/' if bytes.get(pos + 1) == Some(&b'*') => {
                let start = pos;
                match src[pos + 2..].find("*/") {
                    Some(close) => {
                        let end = pos + 2 + close + 2;
                        newline |= src[pos..end].contains('\n');
                        pos = end;
                    }
                    None => {
                        unterminated_comment = Some(start as u32);
                        pos = bytes.len();
                    }
                }
            }
            _ => break,
        }
    }
    Trivia {
        end: pos,
        newline,
        unterminated_comment,
    }
}

pub fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The next expression-mode token at or after `pos` (trivia skipped).
pub fn next_token(src: &str, pos: usize) -> Token {
    let trivia = skip_trivia(src, pos);
    let start = trivia.end;
    let bytes = src.as_bytes();
    let mut unterminated = false;
    let (kind, end) = if start >= bytes.len() {
        (TokenKind::Eof, start)
    } else {
        let rest = &bytes[start..];
        let at = |i: usize| rest.get(i).copied().unwrap_or(0);
        let ident_end = |from: usize| {
            let mut i = from;
            while i < rest.len() && is_ident_continue(rest[i]) {
                i += 1;
            }
            i
        };
        use TokenKind::*;
        let (kind, len) = match rest[0] {
            b if is_ident_start(b) => (Ident, ident_end(1)),
            b'0'..=b'9' => (Int, ident_end(1)),
            b'$' => match at(1) {
                b if is_ident_start(b) => (Var, ident_end(2)),
                b'0'..=b'9' => {
                    let mut i = 2;
                    while at(i).is_ascii_digit() {
                        i += 1;
                    }
                    (Positional, i)
                }
                b'#' => (PositionalCount, 2),
                _ => (Unknown, 1),
            },
            b'@' => {
                if is_ident_start(at(1)) {
                    (Map, ident_end(2))
                } else {
                    (Map, 1)
                }
            }
            b'"' => {
                let (len, terminated) = string_len(rest);
                unterminated = !terminated;
                (Str, len)
            }
            b'(' => (LParen, 1),
            b')' => (RParen, 1),
            b'{' => (LBrace, 1),
            b'}' => (RBrace, 1),
            b'[' => (LBracket, 1),
            b']' => (RBracket, 1),
            b';' => (Semi, 1),
            b',' => (Comma, 1),
            b':' => (Colon, 1),
            b'?' => (Question, 1),
            b'~' => (Tilde, 1),
            b'#' => (Hash, 1),
            b'.' => match at(1) {
                b'.' => (DotDot, 2),
                _ => (Dot, 1),
            },
            b'=' => match at(1) {
                b'=' => (EqEq, 2),
                _ => (Assign, 1),
            },
            b'!' => match at(1) {
                b'=' => (NotEq, 2),
                _ => (Bang, 1),
            },
            b'<' => match (at(1), at(2)) {
                (b'<', b'=') => (ShlAssign, 3),
                (b'<', _) => (Shl, 2),
                (b'=', _) => (Le, 2),
                _ => (Lt, 1),
            },
            b'>' => match (at(1), at(2)) {
                (b'>', b'=') => (ShrAssign, 3),
                (b'>', _) => (Shr, 2),
                (b'=', _) => (Ge, 2),
                _ => (Gt, 1),
            },
            b'&' => match at(1) {
                b'&' => (AndAnd, 2),
                b'=' => (AmpAssign, 2),
                _ => (Amp, 1),
            },
            b'|' => match at(1) {
                b'|' => (OrOr, 2),
                b'=' => (PipeAssign, 2),
                _ => (Pipe, 1),
            },
            b'+' => match at(1) {
                b'+' => (PlusPlus, 2),
                b'=' => (PlusAssign, 2),
                _ => (Plus, 1),
            },
            b'-' => match at(1) {
                b'-' => (MinusMinus, 2),
                b'=' => (MinusAssign, 2),
                b'>' => (Arrow, 2),
                _ => (Minus, 1),
            },
            b'*' => match at(1) {
                b'=' => (StarAssign, 2),
                _ => (Star, 1),
            },
            b'/' => match at(1) {
                b'=' => (SlashAssign, 2),
                _ => (Slash, 1),
            },
            b'%' => match at(1) {
                b'=' => (PercentAssign, 2),
                _ => (Percent, 1),
            },
            b'^' => match at(1) {
                b'=' => (CaretAssign, 2),
                _ => (Caret, 1),
            },
            _ => {
                // One whole character, so spans never split UTF-8.
                let ch_len = src[start..].chars().next().map_or(1, char::len_utf8);
                (Unknown, ch_len)
            }
        };
        (kind, start + len)
    };
    Token {
        kind,
        span: Span::new(start as u32, end as u32),
        newline_before: trivia.newline,
        unterminated,
        unterminated_comment: trivia.unterminated_comment,
    }
}

/// Length of the string literal at the start of `rest` (which begins with `"`)
/// and whether it was closed. A string ends at an unescaped newline, as in bpftrace.
fn string_len(rest: &[u8]) -> (usize, bool) {
    let mut i = 1;
    while i < rest.len() {
        match rest[i] {
            b'"' => return (i + 1, true),
            b'\\' if i + 1 < rest.len() && rest[i + 1] != b'\n' => i += 2,
            b'\n' => return (i, false),
            _ => i += 1,
        }
    }
    (rest.len(), false)
}

/// All expression-mode tokens of `src`, ending with `Eof`. For tests and tools;
/// the parser lexes on demand.
pub fn tokenize(src: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        let token = next_token(src, pos);
        tokens.push(token);
        if token.kind == TokenKind::Eof {
            return tokens;
        }
        pos = token.span.end as usize;
    }
}

/// One `:`-separated piece of an attach point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawPart {
    pub span: Span,
    pub quoted: bool,
    pub unterminated: bool,
}

/// An attach point as lexed in attach-point mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttachPoint {
    pub span: Span,
    pub parts: Vec<RawPart>,
}

/// Lexes one attach point starting exactly at `start` (trivia already skipped).
///
/// An attach point runs until whitespace or one of `, { } ; ( ) =`. Before its
/// first `:` it is a provider name, which `/` also ends (`BEGIN/pid/`); after
/// it, `/` is a path character (`uprobe:/bin/bash:readline`). Quoted parts
/// (`uprobe:"/a b":f`) may contain anything but an unescaped `"` or a newline.
pub fn lex_attach_point(src: &str, start: usize) -> RawAttachPoint {
    let bytes = src.as_bytes();
    let mut parts = Vec::new();
    let mut pos = start;
    let mut part_start = start;
    let mut quoted = false;
    let mut unterminated = false;
    let mut seen_colon = false;
    loop {
        let b = bytes.get(pos).copied();
        match b {
            Some(b':') => {
                parts.push(RawPart {
                    span: Span::new(part_start as u32, pos as u32),
                    quoted,
                    unterminated,
                });
                pos += 1;
                part_start = pos;
                quoted = false;
                unterminated = false;
                seen_colon = true;
            }
            Some(b'"') if seen_colon && pos == part_start => {
                let (len, terminated) = string_len(&bytes[pos..]);
                pos += len;
                quoted = true;
                unterminated = !terminated;
            }
            Some(b'/') if !seen_colon => break,
            Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b'{' | b'}' | b';' | b'(' | b')' | b'=') => {
                break
            }
            Some(_) => {
                // Whole characters, so a span never splits UTF-8.
                pos += src[pos..].chars().next().map_or(1, char::len_utf8);
            }
            None => break,
        }
    }
    parts.push(RawPart {
        span: Span::new(part_start as u32, pos as u32),
        quoted,
        unterminated,
    });
    RawAttachPoint {
        span: Span::new(start as u32, pos as u32),
        parts,
    }
}

/// Decodes the escapes of a string literal's body (between the quotes).
/// Returns the bytes and, for each bad escape, its byte range within `raw` and
/// what is wrong.
pub fn decode_string(raw: &str) -> (Vec<u8>, Vec<(usize, usize, String)>) {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut errors = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let start = i;
        let Some(&c) = bytes.get(i + 1) else {
            errors.push((start, i + 1, "a string cannot end with `\\`".to_string()));
            break;
        };
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut digits = 1;
                while digits < 3 && matches!(bytes.get(i), Some(b'0'..=b'7')) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                if value > 0xff {
                    errors.push((
                        start,
                        i,
                        format!("octal escape `{}` is larger than 255", &raw[start..i]),
                    ));
                } else {
                    out.push(value as u8);
                }
            }
            b'x' | b'X' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match bytes.get(i).and_then(|b| (*b as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    errors.push((start, i, "`\\x` must be followed by hex digits".to_string()));
                } else {
                    out.push(value as u8);
                }
            }
            _ => {
                // Report the whole character after the backslash.
                let ch_len = raw[start + 1..].chars().next().map_or(1, char::len_utf8);
                i = start + 1 + ch_len;
                errors.push((
                    start,
                    i,
                    format!("unknown escape sequence `{}`", &raw[start..i]),
                ));
            }
        }
    }
    (out, errors)
}
