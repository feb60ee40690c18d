//! Write a jq value as JSON text, or say why it is not JSON.
//!
//! jaq's own writer prints what JSON cannot hold (`NaN`, byte strings `b"…"`, non-string object
//! keys) so that a person can see it; a record must be JSON, so here the first two follow jq
//! (non-finite numbers become `null`) and the last two fail the record.

use jaq_json::{Num, Val};
use std::io::Write;

/// Append `v` as compact JSON to `out`, keeping object keys in their order.
pub fn json(out: &mut Vec<u8>, v: &Val) -> Result<(), String> {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Num(Num::Float(x)) if !x.is_finite() => out.extend_from_slice(b"null"),
        // Integers, finite floats (shortest round trip) and decimals as read from the input.
        Val::Num(n) => write!(out, "{n}").map_err(|e| e.to_string())?,
        Val::TStr(s) => string(out, s),
        Val::BStr(_) => return Err(format!("{} is a byte string, not JSON", short(v))),
        Val::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(out, item)?;
            }
            out.push(b']');
        }
        Val::Obj(fields) => {
            out.push(b'{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let Val::TStr(k) = k else {
                    return Err(format!("object key {} is not a string", short(k)));
                };
                string(out, k);
                out.push(b':');
                json(out, v)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A JSON string; bytes that are not UTF-8 become U+FFFD, as jq does.
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &*s);
}

/// A value for an error message, cut to a readable length.
fn short(v: &Val) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Val) -> Result<String, String> {
        let mut out = Vec::new();
        json(&mut out, v)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn parse(s: &str) -> Val {
        jaq_json::read::parse_single(s.as_bytes()).unwrap()
    }

    #[test]
    fn writes_compact_json_in_key_order_and_keeps_number_text() {
        let v = parse(r#"{ "b": [1, 2.50, 1e400, -1], "a": "x\"\n\u00e9", "c": null }"#);
        assert_eq!(
            text(&v).unwrap(),
            r#"{"b":[1,2.50,1e400,-1],"a":"x\"\né","c":null}"#
        );
    }

    #[test]
    fn non_finite_numbers_are_null_and_bytes_or_odd_keys_fail() {
        assert_eq!(text(&Val::from(f64::NAN)).unwrap(), "null");
        assert_eq!(text(&Val::from(f64::INFINITY)).unwrap(), "null");
        assert!(
            text(&Val::byte_str(&b"ab"[..]))
                .unwrap_err()
                .contains("byte string")
        );
        let odd_key = Val::obj([(Val::from(1usize), Val::Null)].into_iter().collect());
        assert!(text(&odd_key).unwrap_err().contains("not a string"));
    }
}
