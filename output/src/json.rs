//! Private JSON plumbing for `parse_line`: an order-preserving JSON tree, a
//! borrowing deserializer for the event envelope, and the repair of bpftrace's
//! broken escapes of non-ASCII bytes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps object members in document order.
///
/// `serde_json::Value` sorts object keys (its `preserve_order` feature would
/// change it for the whole workspace), but bpftrace's key order is meaningful.
#[derive(Debug, Clone, PartialEq)]
///
/// Strings and member names borrow from the line when they have no escapes,
/// so the `"min"`/`"max"`/`"count"` of every bucket cost no allocation.
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    /// Converts to a `serde_json::Value` (object order is then serde_json's).
    pub(crate) fn into_value(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(i) {
                    Value::from(v)
                } else {
                    // Only reachable for hand-built values: the parser yields i64/u64.
                    serde_json::Number::from_f64(i as f64).map_or(Value::Null, Value::Number)
                }
            }
            Json::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.into_owned()),
            Json::Arr(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Obj(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Json<'de>, E> {
        Ok(Json::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Json<'de>, E> {
        Ok(i128::try_from(v).map_or(Json::Float(v as f64), Json::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Json<'de>>()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((CowStr(k), v)) = map.next_entry::<CowStr<'de>, Json<'de>>()? {
            members.push((k, v));
        }
        Ok(Json::Obj(members))
    }
}

/// A string that borrows from the input when it has no escapes.
/// (`Cow<str>`'s own `Deserialize` always allocates.)
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Top-level member names of an event object, matched without allocating.
enum Field {
    Type,
    Data,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "type" => Field::Type,
                    "data" => Field::Data,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The envelope of one bpftrace JSON line: `{"type": ..., "data": ..., ...}`.
///
/// Members other than `type` and `data` are kept because `helper_error`
/// events carry their payload at the top level instead of under `data`.
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) data: Option<Json<'a>>,
    pub(crate) extra: Vec<(String, Json<'a>)>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bpftrace event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope {
                    kind: None,
                    data: None,
                    extra: Vec::new(),
                };
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Type => {
                            // A non-string `type` is not a bpftrace event.
                            let CowStr(k) = map.next_value::<CowStr<'de>>()?;
                            env.kind = Some(k);
                        }
                        Field::Data => env.data = Some(map.next_value::<Json<'de>>()?),
                        Field::Other(name) => {
                            let value = map.next_value::<Json<'de>>()?;
                            env.extra.push((name, value));
                        }
                    }
                }
                if env.kind.is_none() {
                    return Err(de::Error::missing_field("type"));
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

/// Undoes bpftrace 0.17's escaping of bytes >= 0x80.
///
/// bpftrace's `json_escape` tests `c <= '\x1f'` on a *signed* `char`, so every
/// byte of a non-ASCII UTF-8 sequence is written as `\u` plus the sign-extended
/// hex int: "é" (c3 a9) becomes `\uffffffc3\uffffffa9`. That is still valid
/// JSON (`\uffff` then the text `ffc3`), so it would parse into garbage.
/// We turn each such escape back into its raw byte and decode the result as
/// UTF-8 (lossily: a comm truncated mid-character gives U+FFFD).
/// Returns `None` when the line has no such escape (the common case).
pub(crate) fn repair_signed_escapes(line: &str) -> Option<String> {
    if !line.contains("\\uffffff") {
        return None;
    }
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        // An escape: either our broken `\uffffffXX` or any other two-byte
        // prefix copied verbatim (so `\\uffffff..` stays a literal backslash).
        if let Some(byte) = broken_escape_byte(&b[i..]) {
            out.push(byte);
            i += 10;
        } else {
            out.push(b'\\');
            if let Some(&next) = b.get(i + 1) {
                out.push(next);
            }
            i += 2;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// If `s` starts with `\uffffffXX` where XX >= 0x80, returns that byte.
fn broken_escape_byte(s: &[u8]) -> Option<u8> {
    let esc = s.get(..10)?;
    if &esc[..8] != b"\\uffffff" {
        return None;
    }
    let hi = (esc[8] as char).to_digit(16)?;
    let lo = (esc[9] as char).to_digit(16)?;
    let byte = u8::try_from(hi * 16 + lo).ok()?;
    // Only bytes with the sign bit set get sign-extended by bpftrace.
    (byte >= 0x80).then_some(byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_signed_char_escapes() {
        let line =
            r#"{"type": "printf", "data": "hi \uffffffc3\uffffffbcn\uffffffc3\uffffffaf\n"}"#;
        let fixed = repair_signed_escapes(line).expect("needs repair");
        let v: serde_json::Value = serde_json::from_str(&fixed).expect("json");
        assert_eq!(v["data"], "hi ünï\n");
    }

    #[test]
    fn leaves_escaped_backslash_alone() {
        // `\\uffffffc3` is a literal backslash followed by text.
        let line = r#"{"data": "\\uffffffc3"}"#;
        let fixed = repair_signed_escapes(line).expect("contains the pattern");
        assert_eq!(fixed, line);
        assert_eq!(repair_signed_escapes(r#"{"data": "plain"}"#), None);
    }

    #[test]
    fn truncated_sequences_become_replacement_chars() {
        let fixed = repair_signed_escapes(r#""\uffffffc3x\uffffff""#).expect("pattern");
        assert_eq!(fixed, "\"\u{fffd}x\\uffffff\"");
    }

    #[test]
    fn keeps_member_order() {
        let j: Json<'_> =
            serde_json::from_str(r#"{"b": 1, "a": [true, null, -2, 1.5], "c": "x\ty"}"#)
                .expect("json");
        assert_eq!(
            j,
            Json::Obj(vec![
                ("b".into(), Json::Int(1)),
                (
                    "a".into(),
                    Json::Arr(vec![
                        Json::Bool(true),
                        Json::Null,
                        Json::Int(-2),
                        Json::Float(1.5)
                    ])
                ),
                ("c".into(), Json::Str("x\ty".into())),
            ])
        );
    }
}
