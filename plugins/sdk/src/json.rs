//! Small helpers for JSON record values: dotted field paths (`"reading.temperature_c"`).

use serde_json::Value;

/// The value at a dotted `path` (`"a.b.c"`) inside objects.
pub fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

/// The mutable value at a dotted `path` inside objects.
pub fn get_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(doc, |v, part| v.get_mut(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_dotted_paths() {
        let mut doc = serde_json::json!({"a": {"b": 1}});
        assert_eq!(get(&doc, "a.b"), Some(&Value::from(1)));
        assert_eq!(get(&doc, "a.c"), None);
        *get_mut(&mut doc, "a.b").unwrap() = 2.into();
        assert_eq!(doc["a"]["b"], 2);
    }
}

/// Which of `names` are top-level keys of the JSON object in `value`, without building the
/// document (values are skipped, keys compared in place). Fails if `value` is not an object.
pub fn present_keys<S: AsRef<str>>(
    value: &[u8],
    names: &[S],
) -> Result<Vec<bool>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(value);
    let found = scan::Keys { names }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// `value` (the text of a JSON object) with `fields` appended before its closing brace. The
/// caller guarantees the keys are not present already (see [`present_keys`]). `None` if the text
/// does not end like an object.
pub fn append_fields<K: AsRef<str>>(value: &[u8], fields: &[(K, &Value)]) -> Option<Vec<u8>> {
    let end = value.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if value[end] != b'}' {
        return None;
    }
    let body = &value[..end];
    let empty = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| body[i] == b'{');
    let mut out = Vec::with_capacity(value.len() + 32 * fields.len());
    out.extend_from_slice(body);
    for (i, (key, v)) in fields.iter().enumerate() {
        if i > 0 || !empty {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key.as_ref()).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, v).ok()?;
    }
    out.push(b'}');
    Some(out)
}

mod scan {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    pub(super) struct Keys<'n, S> {
        pub names: &'n [S],
    }

    impl<'de, S: AsRef<str>> DeserializeSeed<'de> for Keys<'_, S> {
        type Value = Vec<bool>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<bool>, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: AsRef<str>> Visitor<'de> for Keys<'_, S> {
        type Value = Vec<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<bool>, A::Error> {
            let mut found = vec![false; self.names.len()];
            while let Some(hit) = map.next_key_seed(Key { names: self.names })? {
                map.next_value::<IgnoredAny>()?;
                if let Some(i) = hit {
                    found[i] = true;
                }
            }
            Ok(found)
        }
    }

    struct Key<'n, S> {
        names: &'n [S],
    }

    impl<'de, S: AsRef<str>> DeserializeSeed<'de> for Key<'_, S> {
        type Value = Option<usize>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, S: AsRef<str>> Visitor<'de> for Key<'_, S> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
            Ok(self.names.iter().position(|n| n.as_ref() == key))
        }
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    #[test]
    fn finds_keys_and_appends() {
        let v = br#"{"a":1,"b":{"c":2}} "#;
        assert_eq!(present_keys(v, &["b", "c"]).unwrap(), vec![true, false]);
        assert!(present_keys(b"[1]", &["a"]).is_err());
        let out = append_fields(v, &[("x", &Value::from(true))]).unwrap();
        assert_eq!(out, br#"{"a":1,"b":{"c":2},"x":true}"#);
        let out = append_fields(b"{ }", &[("x", &Value::from(1))]).unwrap();
        assert_eq!(out, br#"{ "x":1}"#);
    }
}
