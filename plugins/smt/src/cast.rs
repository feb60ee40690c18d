//! `Cast`: fields, or the whole value, to another primitive type.
//!
//! ```toml
//! with = { type = "Cast", fields = { age = "int32", "reading.t" = "float32", ok = "boolean" } }
//! with = { type = "Cast", to = "string" }   # the whole value
//! ```
//!
//! Types: `int8`, `int16`, `int32`, `int64`, `float32`, `float64`, `boolean`, `string`. From a
//! number, a boolean (`1` / `0`) or text that reads as the target type; a float to an integer
//! drops its fraction (as Kafka Connect does). Where Kafka Connect would wrap around (`300` to
//! int8) or guess (`"yes"` to boolean), the record fails instead: a value that does not fit goes
//! to the dead letter with the reason. `null` stays `null`; objects and arrays cast only to
//! `string` (their JSON text).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Number, Value};
use sluice_plugin_sdk::{ValuePath, config_at, config_error};

use crate::doc::{Doc, kind};
use crate::{Flow, Step, at, step_error};

/// A target type.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CastType {
    /// -128 ..= 127.
    Int8,
    /// -32768 ..= 32767.
    Int16,
    /// 32-bit signed.
    Int32,
    /// 64-bit signed.
    Int64,
    /// Single precision: the value is rounded to the nearest `f32`, written shortest.
    Float32,
    /// Double precision.
    Float64,
    /// `true` / `false`.
    Boolean,
    /// Text.
    String,
}

impl CastType {
    fn name(self) -> &'static str {
        match self {
            CastType::Int8 => "int8",
            CastType::Int16 => "int16",
            CastType::Int32 => "int32",
            CastType::Int64 => "int64",
            CastType::Float32 => "float32",
            CastType::Float64 => "float64",
            CastType::Boolean => "boolean",
            CastType::String => "string",
        }
    }

    fn int_range(self) -> Option<(i64, i64)> {
        match self {
            CastType::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            CastType::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            CastType::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            CastType::Int64 => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CastConfig {
    /// The whole value's target type.
    #[serde(default)]
    to: Option<CastType>,
    /// Field path → target type.
    #[serde(default)]
    fields: BTreeMap<String, CastType>,
}

struct Cast {
    to: Option<CastType>,
    fields: Vec<(ValuePath, CastType)>,
}

pub fn build(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: CastConfig = config_at(at_, with)?;
    let fields = c
        .fields
        .into_iter()
        .map(|(path, ty)| {
            ValuePath::parse(&path)
                .map(|p| (p, ty))
                .map_err(|e| config_error(&at(&at(at_, "fields"), &path), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match (c.to.is_some(), fields.is_empty()) {
        (true, false) => Err(step_error(
            at_,
            "set `to` (the whole value) or `fields`, not both",
        )),
        (false, true) => Err(step_error(
            at_,
            "nothing to cast: set `to` (the whole value) or `fields = { name = \"type\" }`",
        )),
        _ => Ok(Box::new(Cast { to: c.to, fields })),
    }
}

/// `v` as `ty`, or why not.
pub fn cast(v: &Value, ty: CastType) -> Result<Value, String> {
    let cannot = || format!("cannot cast {} to {}", kind(v), ty.name());
    let not_a = || format!("{v} is not {}", article(ty));
    if v.is_null() {
        return Ok(Value::Null);
    }
    if let Some((min, max)) = ty.int_range() {
        let i: i128 = match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.into(),
                (None, Some(u), _) => u.into(),
                (None, None, Some(f)) if f.is_finite() && f.abs() < 1e20 => f.trunc() as i128,
                _ => return Err(format!("{v} is out of {}'s range", ty.name())),
            },
            Value::Bool(b) => (*b).into(),
            Value::String(s) => s.parse::<i128>().map_err(|_| not_a())?,
            _ => return Err(cannot()),
        };
        if i < min.into() || i > max.into() {
            return Err(format!("{v} is out of {}'s range", ty.name()));
        }
        return Ok(Value::from(i as i64));
    }
    match ty {
        CastType::Float32 | CastType::Float64 => {
            let f = match v {
                Value::Number(n) => n.as_f64().ok_or_else(cannot)?,
                Value::Bool(b) => f64::from(u8::from(*b)),
                Value::String(s) => s.parse::<f64>().map_err(|_| not_a())?,
                _ => return Err(cannot()),
            };
            let f = if ty == CastType::Float32 {
                let narrow = f as f32;
                if narrow.is_infinite() && f.is_finite() {
                    return Err(format!("{v} is out of float32's range"));
                }
                // The shortest text of the f32, read back: 0.1 stays 0.1, not 0.10000000149.
                narrow
                    .to_string()
                    .parse::<f64>()
                    .map_err(|e| e.to_string())?
            } else {
                f
            };
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("{v} is not a finite number"))
        }
        CastType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Number(n) => Ok(Value::Bool(n.as_f64() != Some(0.0))),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Value::String(_) => Err(not_a()),
            _ => Err(cannot()),
        },
        CastType::String => Ok(match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        }),
        _ => Err(cannot()),
    }
}

fn article(ty: CastType) -> String {
    match ty {
        CastType::Int8 | CastType::Int16 | CastType::Int32 | CastType::Int64 => {
            format!("an {}", ty.name())
        }
        _ => format!("a {}", ty.name()),
    }
}

impl Step for Cast {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let value = doc.value()?;
        if let Some(ty) = self.to {
            *value = cast(value, ty).map_err(|e| format!("value: {e}"))?;
            return Ok(Flow::Next);
        }
        for (field, ty) in &self.fields {
            if let Some(v) = field.get_mut(value) {
                *v = cast(v, *ty).map_err(|e| format!("field `{field}`: {e}"))?;
            }
        }
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn c(v: Value, ty: &str) -> Result<Value, String> {
        cast(&v, serde_json::from_value(json!(ty)).unwrap())
    }

    #[test]
    fn casts_between_primitives() {
        assert_eq!(c(json!("42"), "int8"), Ok(json!(42)));
        assert_eq!(c(json!(-7.9), "int32"), Ok(json!(-7)));
        assert_eq!(c(json!(true), "int64"), Ok(json!(1)));
        assert_eq!(c(json!(3), "float64"), Ok(json!(3.0)));
        assert_eq!(c(json!(0.1), "float32"), Ok(json!(0.1)));
        assert_eq!(c(json!("2.5"), "float32"), Ok(json!(2.5)));
        assert_eq!(c(json!(2), "boolean"), Ok(json!(true)));
        assert_eq!(c(json!("FALSE"), "boolean"), Ok(json!(false)));
        assert_eq!(c(json!(12.5), "string"), Ok(json!("12.5")));
        assert_eq!(c(json!({"a": 1}), "string"), Ok(json!(r#"{"a":1}"#)));
        assert_eq!(c(json!(null), "int8"), Ok(json!(null)));
    }

    #[test]
    fn values_that_do_not_fit_fail() {
        assert_eq!(
            c(json!(300), "int8"),
            Err("300 is out of int8's range".into())
        );
        assert_eq!(
            c(json!("abc"), "int32"),
            Err(r#""abc" is not an int32"#.into())
        );
        assert_eq!(
            c(json!("1.5"), "int32"),
            Err(r#""1.5" is not an int32"#.into())
        );
        assert_eq!(
            c(json!("yes"), "boolean"),
            Err(r#""yes" is not a boolean"#.into())
        );
        assert_eq!(
            c(json!([1]), "int8"),
            Err("cannot cast an array to int8".into())
        );
        assert_eq!(
            c(json!(1e300), "float32"),
            Err("1e+300 is out of float32's range".into())
        );
        assert!(c(json!(1e300), "int64").is_err());
    }

    #[test]
    fn casts_fields_or_the_whole_value() {
        let with =
            json!({"type": "Cast", "fields": {"a": "string", "b.c": "int16", "missing": "int8"}});
        assert_eq!(
            value(with.clone(), r#"{"a":1,"b":{"c":"7"}}"#),
            r#"{"a":"1","b":{"c":7}}"#
        );
        assert_eq!(
            run(with, r#"{"a":1,"b":{"c":"x"}}"#).unwrap_err(),
            r#"Cast: field `b.c`: "x" is not an int16"#
        );
        assert_eq!(
            value(json!({"type": "Cast", "to": "int64"}), r#""12""#),
            "12"
        );
    }

    #[test]
    fn bad_types_and_shapes_are_config_errors() {
        let e = smt(json!({"type": "Cast", "fields": {"a": "int128"}}))
            .err()
            .unwrap();
        assert!(e.starts_with("`fields.a`: unknown variant `int128`"), "{e}");
        let e = smt(json!({"steps": [{"type": "Cast", "to": "bytes"}]}))
            .err()
            .unwrap();
        assert!(
            e.starts_with("`steps[0].to`: unknown variant `bytes`"),
            "{e}"
        );
        let e = smt(json!({"type": "Cast"})).err().unwrap();
        assert!(e.starts_with("nothing to cast"), "{e}");
        let e = smt(json!({"type": "Cast", "to": "string", "fields": {"a": "int8"}}))
            .err()
            .unwrap();
        assert!(e.contains("not both"), "{e}");
    }
}
