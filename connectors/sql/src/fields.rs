//! Taking the fields a write needs out of a record's JSON text. When every column takes the
//! top-level field of its own name (no `columns` paths), only those fields are parsed into
//! values, straight into their column's slot; the rest of the document is checked and skipped
//! without building a tree (no key strings, no map), which is most of the cost of a wide record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// The top-level fields of a JSON object by name: `slots[i]` takes the field named
/// `names[i]` (the last one when a name repeats, as a parsed object would keep it).
pub(crate) fn top_level(
    text: &[u8],
    index: &HashMap<String, usize>,
    slots: usize,
) -> Result<Vec<Option<Value>>, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let out = Slots { index, slots }
        .deserialize(&mut de)
        .and_then(|out| de.end().map(|()| out))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => "value is not a JSON object".to_string(),
            _ => format!("value is not JSON: {e}"),
        })?;
    Ok(out)
}

struct Slots<'a> {
    index: &'a HashMap<String, usize>,
    slots: usize,
}

impl<'de> DeserializeSeed<'de> for Slots<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Slots<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![None; self.slots];
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.index.get(key.as_ref()) {
                Some(&i) => out[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(names: &[&str]) -> HashMap<String, usize> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect()
    }

    #[test]
    fn takes_named_fields_and_skips_the_rest() {
        let idx = index(&["a", "b", "c\"q"]);
        let text =
            br#"{"x": {"deep": [1, {"y": null}]}, "b": "two", "a": 1, "c\"q": [true], "b": 2}"#;
        let got = top_level(text, &idx, 3).unwrap();
        assert_eq!(
            got,
            vec![Some(json!(1)), Some(json!(2)), Some(json!([true]))]
        );
        let got = top_level(br#"{"z": 1}"#, &idx, 3).unwrap();
        assert_eq!(got, vec![None, None, None]);
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        let idx = index(&["a"]);
        for (text, want) in [
            (&br#"[1, 2]"#[..], "value is not a JSON object"),
            (br#""a""#, "value is not a JSON object"),
            (br#"{"a": 1"#, "value is not JSON"),
            (br#"{"a": 1} {"#, "value is not JSON"),
            (br#"{"skipped": tru}"#, "value is not JSON"),
        ] {
            let err = top_level(text, &idx, 1).unwrap_err();
            assert!(
                err.starts_with(want),
                "{}: {err}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
