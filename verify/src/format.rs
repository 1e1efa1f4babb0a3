//! Renders a `printf` line the way bpftrace 0.17 prints it, for
//! counterexamples and the concrete evaluator.
//!
//! bpftrace finds conversions with the pattern `%-?[0-9]*(\.[0-9]+)?` plus a
//! length (`hh h l ll j z t`) and one of `d u o x X p`, or `s`, `c`, `r`,
//! `rx`, `rh`, then hands each piece of the format to `snprintf` with one
//! 64-bit argument (sign- or zero-extended from the value's type). C's
//! conversion therefore decides what is shown: `%d` and `%u` show the low 32
//! bits, `%hd` 16, `%hhd` 8, and only `l`/`ll`/`j`/`z`/`t` all 64, exactly as
//! glibc does on x86-64. Other `%` sequences are text (`%%` prints `%`).

/// One argument, as printf receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Printable {
    /// An integer extended to 64 bits by its own type.
    Int(u64),
    Str(Vec<u8>),
    /// Something shown by description (`<kstack>`).
    Opaque(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Conv {
    left: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
    /// Bits shown by an integer conversion (8, 16, 32 or 64).
    bits: u32,
    /// `d u o x X p c s r`.
    letter: char,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Conv(Conv),
}

/// A parsed format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    parts: Vec<Part>,
}

/// Bits an integer conversion shows, by its length: `%d` the low 32, `%hd`
/// 16, `%hhd` 8, `%ld` and the other 64-bit lengths all 64.
fn length_bits(length: &str) -> u32 {
    match length {
        "hh" => 8,
        "h" => 16,
        "" => 32,
        _ => 64,
    }
}

/// `(bits, letter)` of a conversion as the front end spells it (`lld`, `s`, `rx`).
fn conversion(conv: &str) -> (u32, char) {
    match conv {
        "r" | "rx" | "rh" => (64, 'r'),
        "s" => (64, 's'),
        "c" => (8, 'c'),
        _ => {
            let (length, letter) = conv.split_at(conv.len().saturating_sub(1));
            let letter = letter.chars().next().unwrap_or('d');
            let bits = if letter == 'p' {
                64
            } else {
                length_bits(length)
            };
            (bits, letter)
        }
    }
}

/// C text outside conversions: `%%` is a single `%`.
fn text(s: &str) -> String {
    s.replace("%%", "%")
}

impl Format {
    /// Conversions are found by the front end's scanner (the checker's), so
    /// what is rendered and what is checked agree.
    pub fn parse(fmt: &str) -> Format {
        let mut parts = Vec::new();
        let mut last = 0;
        for spec in kgent_frontend::passes::format::parse(fmt) {
            if last < spec.start {
                parts.push(Part::Text(text(&fmt[last..spec.start])));
            }
            let (bits, letter) = conversion(&spec.conv);
            parts.push(Part::Conv(Conv {
                left: spec.left,
                zero: spec.width.starts_with('0'),
                width: spec.width.parse().ok().filter(|w| *w > 0),
                precision: spec.precision,
                bits,
                letter,
            }));
            last = spec.end;
        }
        if last < fmt.len() {
            parts.push(Part::Text(text(&fmt[last..])));
        }
        Format { parts }
    }

    /// How many arguments the format takes.
    pub fn arg_count(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Conv(_)))
            .count()
    }

    /// The letters of the conversions in order (`d`, `s`, ...).
    pub fn letters(&self) -> Vec<char> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Conv(c) => Some(c.letter),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// The line printf prints for `args` (missing arguments print nothing).
    pub fn render(&self, args: &[Printable]) -> String {
        let mut out: Vec<u8> = Vec::new();
        let mut next = 0;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Conv(c) => {
                    if let Some(arg) = args.get(next) {
                        render_conv(c, arg, &mut out);
                    }
                    next += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn pad(body: Vec<u8>, c: &Conv, zero_ok: bool, out: &mut Vec<u8>) {
    let width = c.width.unwrap_or(0);
    if body.len() >= width {
        out.extend(body);
        return;
    }
    let fill = width - body.len();
    if c.left {
        out.extend(body);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if c.zero && zero_ok {
        // Zeros go after the sign.
        let (sign, digits) = match body.first() {
            Some(b'-') => (&body[..1], &body[1..]),
            _ => (&body[..0], &body[..]),
        };
        out.extend_from_slice(sign);
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(digits);
    } else {
        out.extend(std::iter::repeat_n(b' ', fill));
        out.extend(body);
    }
}

fn render_conv(c: &Conv, arg: &Printable, out: &mut Vec<u8>) {
    match (c.letter, arg) {
        ('s', Printable::Str(s)) => {
            let s = match c.precision {
                Some(p) if p < s.len() => &s[..p],
                _ => &s[..],
            };
            pad(s.to_vec(), c, false, out);
        }
        ('s' | 'r', Printable::Opaque(d)) => pad(d.as_bytes().to_vec(), c, false, out),
        ('r', Printable::Str(d)) => pad(d.clone(), c, false, out),
        ('c', Printable::Int(v)) => pad(vec![*v as u8], c, false, out),
        ('p', Printable::Int(v)) => {
            let body = if *v == 0 {
                b"(nil)".to_vec()
            } else {
                format!("0x{v:x}").into_bytes()
            };
            pad(body, c, false, out);
        }
        (letter, Printable::Int(v)) if "duoxX".contains(letter) => {
            let mask = if c.bits >= 64 {
                u64::MAX
            } else {
                (1u64 << c.bits) - 1
            };
            let low = v & mask;
            let (negative, magnitude) = if letter == 'd' {
                let shift = 64 - c.bits;
                let signed = ((low << shift) as i64) >> shift;
                (signed < 0, signed.unsigned_abs())
            } else {
                (false, low)
            };
            let mut digits = match letter {
                'o' => format!("{magnitude:o}"),
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                _ => magnitude.to_string(),
            };
            if let Some(p) = c.precision {
                if p == 0 && magnitude == 0 {
                    digits.clear();
                } else if digits.len() < p {
                    digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                }
            }
            let body = format!("{}{digits}", if negative { "-" } else { "" });
            pad(body.into_bytes(), c, c.precision.is_none(), out);
        }
        // A value of the wrong kind for its conversion (bpftrace would reject
        // the program): shown for what it is.
        (_, Printable::Int(v)) => pad(v.to_string().into_bytes(), c, false, out),
        (_, Printable::Str(s)) => pad(s.clone(), c, false, out),
        (_, Printable::Opaque(d)) => pad(d.clone().into_bytes(), c, false, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(fmt: &str, args: &[Printable]) -> String {
        Format::parse(fmt).render(args)
    }

    #[test]
    fn integer_conversions_show_the_bits_c_shows() {
        use Printable::Int;
        let minus_one = u64::MAX;
        assert_eq!(r("%d", &[Int(minus_one)]), "-1");
        assert_eq!(r("%u", &[Int(minus_one)]), "4294967295");
        assert_eq!(r("%lu", &[Int(minus_one)]), "18446744073709551615");
        assert_eq!(r("%lld", &[Int(minus_one)]), "-1");
        assert_eq!(r("%x", &[Int(0x1_0000_00ff)]), "ff");
        assert_eq!(r("%llx", &[Int(0x1_0000_00ff)]), "1000000ff");
        assert_eq!(r("%hhd", &[Int(0xff)]), "-1");
        assert_eq!(r("%hu", &[Int(0x1_0001)]), "1");
        assert_eq!(r("%d", &[Int(1 << 32)]), "0");
        assert_eq!(
            r("%5d|%-5d|%05d", &[Int(42), Int(42), Int(42)]),
            "   42|42   |00042"
        );
        assert_eq!(r("%05d", &[Int(minus_one)]), "-0001");
        assert_eq!(r("%.3d", &[Int(7)]), "007");
        assert_eq!(r("%p %p", &[Int(0), Int(0xff)]), "(nil) 0xff");
        assert_eq!(r("%c", &[Int(0x41)]), "A");
        assert_eq!(r("%X", &[Int(0xab)]), "AB");
        assert_eq!(r("%o", &[Int(8)]), "10");
    }

    #[test]
    fn strings_text_and_unknown_conversions() {
        let s = |t: &str| Printable::Str(t.as_bytes().to_vec());
        assert_eq!(
            r("%s-%-6s|%.2s", &[s("ab"), s("cd"), s("xyz")]),
            "ab-cd    |xy"
        );
        assert_eq!(r("100%% %i %d\n", &[Printable::Int(5)]), "100% %i 5\n");
        assert_eq!(Format::parse("%s %d %lu").arg_count(), 3);
        assert_eq!(Format::parse("%s %d %lu").letters(), ['s', 'd', 'u']);
    }
}
