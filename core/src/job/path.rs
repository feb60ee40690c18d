//! Field paths inside a job file (`sinks[0].batch.max_bytes`) and their source lines.

use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The path of a field inside a job file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.into()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// `prefix` followed by this path.
    pub fn under(&self, prefix: &FieldPath) -> Self {
        let mut p = prefix.clone();
        p.0.extend(self.0.iter().cloned());
        p
    }

    /// Parse a dotted path with indices, `a.b[0].c`. `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let mut path = Self::root();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && rest.is_empty() {
                return None;
            }
            if !key.is_empty() {
                path = path.key(key);
            }
            while !rest.is_empty() {
                let close = rest.find(']')?;
                let index = rest.get(1..close)?.parse().ok()?;
                path = path.index(index);
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return None;
                }
            }
        }
        Some(path)
    }

    /// Convert a serde_path_to_error path.
    pub fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        Self(
            path.iter()
                .filter_map(|s| match s {
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Enum { variant } => Some(Segment::Key(variant.clone())),
                    S::Unknown => None,
                })
                .collect(),
        )
    }

    /// The 1-based line of this field in the document, or of its nearest existing ancestor.
    pub fn line_in(&self, doc: &toml_edit::Document<String>) -> Option<usize> {
        let text = doc.raw();
        let mut best = None;
        let mut node = Some(Node::Table(doc.as_table()));
        for seg in &self.0 {
            let Some(current) = node else { break };
            let (next, span) = current.step(seg);
            if let Some(start) = span {
                best = Some(start);
            }
            node = next;
        }
        best.map(|start| text[..start.min(text.len())].matches('\n').count() + 1)
    }
}

/// A position while walking a parsed TOML document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Inline(&'a toml_edit::InlineTable),
    Tables(&'a toml_edit::ArrayOfTables),
    Array(&'a toml_edit::Array),
    Leaf,
}

impl<'a> Node<'a> {
    fn of_item(item: &'a toml_edit::Item) -> Self {
        match item {
            toml_edit::Item::Table(t) => Node::Table(t),
            toml_edit::Item::ArrayOfTables(a) => Node::Tables(a),
            toml_edit::Item::Value(v) => Node::of_value(v),
            toml_edit::Item::None => Node::Leaf,
        }
    }

    fn of_value(value: &'a toml_edit::Value) -> Self {
        match value {
            toml_edit::Value::InlineTable(t) => Node::Inline(t),
            toml_edit::Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }

    /// One step down, with the start offset of the key (or element) found.
    fn step(self, seg: &Segment) -> (Option<Node<'a>>, Option<usize>) {
        match (self, seg) {
            (Node::Table(t), Segment::Key(k)) => (
                t.get(k).map(Node::of_item),
                t.key(k).and_then(|k| k.span()).map(|s| s.start),
            ),
            (Node::Inline(t), Segment::Key(k)) => (
                t.get(k).map(Node::of_value),
                t.key(k).and_then(|k| k.span()).map(|s| s.start),
            ),
            (Node::Tables(a), Segment::Index(i)) => match a.get(*i) {
                Some(t) => (Some(Node::Table(t)), t.span().map(|s| s.start)),
                None => (None, None),
            },
            (Node::Array(a), Segment::Index(i)) => match a.get(*i) {
                Some(v) => (Some(Node::of_value(v)), v.span().map(|s| s.start)),
                None => (None, None),
            },
            _ => (None, None),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem with one field of a config, before it is tied to a file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where the problem is.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue. For serde's "unknown field `x`" messages the path is extended by `x` so the
    /// line points at the offending key.
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        let message = message.into();
        let path = match unknown_field_name(&message) {
            Some(name) if path.0.last() != Some(&Segment::Key(name.clone())) => path.key(name),
            _ => path,
        };
        Self { path, message }
    }
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::FieldPath;

    #[test]
    fn parses_what_it_displays() {
        for text in ["a", "a.b", "sinks[0].batch.max_bytes", "m[1][2].x"] {
            assert_eq!(FieldPath::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "a..b", "a[x]", "a[1", "a[1]b"] {
            assert!(FieldPath::parse(bad).is_none(), "{bad}");
        }
    }
}
