//! What each record becomes: a write model (insert, `$set` upsert, replace, delete) on its
//! collection, or the reason it cannot be one (it is then rejected, never dropped).

use bson::{Bson, Document, doc};
use mongodb::Namespace;
use mongodb::options::{
    DeleteOneModel, InsertOneModel, ReplaceOneModel, UpdateModifications, UpdateOneModel,
    WriteModel,
};
use serde_json::Value;
use sluice_core::{Record, ValuePath};

use crate::bson_map::{self, MAX_DOCUMENT};
use crate::config::{MongoSinkConfig, WriteMode};

/// Where a record's collection comes from.
#[derive(Clone, Debug)]
enum Route {
    Fixed(String),
    Field(ValuePath),
    Header(String),
}

/// Turns records into write models.
#[derive(Clone, Debug)]
pub struct Planner {
    database: String,
    route: Route,
    mode: WriteMode,
    key: Vec<ValuePath>,
    id: Option<ValuePath>,
    dates: Vec<ValuePath>,
}

impl Planner {
    /// The planner of a (validated) config.
    pub fn new(config: &MongoSinkConfig) -> Self {
        let route = match (
            &config.collection,
            &config.collection_field,
            &config.collection_header,
        ) {
            (Some(c), _, _) => Route::Fixed(c.clone()),
            (None, Some(f), _) => Route::Field(f.clone()),
            (None, None, Some(h)) => Route::Header(h.clone()),
            (None, None, None) => Route::Fixed(String::new()),
        };
        Self {
            database: config.database.clone(),
            route,
            mode: config.mode,
            key: config.key.clone(),
            id: config.id.clone(),
            dates: config.dates.clone(),
        }
    }

    /// The collection as configured, for names and logs: `readings`, `{field:kind}`,
    /// `{header:table}`.
    pub fn collection_spec(&self) -> String {
        match &self.route {
            Route::Fixed(c) => c.clone(),
            Route::Field(f) => format!("{{field:{f}}}"),
            Route::Header(h) => format!("{{header:{h}}}"),
        }
    }

    /// The fixed collection, when there is one.
    pub fn fixed_collection(&self) -> Option<&str> {
        match &self.route {
            Route::Fixed(c) => Some(c),
            _ => None,
        }
    }

    /// The write of one record; `Err` is why it cannot be written.
    pub fn plan(&self, r: &Record) -> Result<WriteModel, String> {
        if r.value.len() > MAX_DOCUMENT {
            return Err(format!(
                "the value is {} bytes; a MongoDB document holds at most 16 MiB",
                r.value.len()
            ));
        }
        let value: Value = serde_json::from_slice(&r.value)
            .map_err(|e| format!("the value is not valid JSON: {e}"))?;
        let namespace = Namespace::new(self.database.clone(), self.collection(r, &value)?);
        let id = match &self.id {
            Some(path) => Some(field(path, &value, "id")?),
            None => None,
        };
        let filter = || -> Result<Document, String> {
            if self.key.is_empty() {
                return Ok(doc! { "_id": id.clone().unwrap_or(Bson::Null) });
            }
            let mut f = Document::new();
            for path in &self.key {
                f.insert(path.as_str(), field(path, &value, "key")?);
            }
            Ok(f)
        };
        let document = || -> Result<Document, String> {
            let mut d = bson_map::document(&value, &self.dates)?;
            if let Some(id) = &id {
                d.insert("_id", id.clone());
            }
            Ok(d)
        };
        Ok(match self.mode {
            WriteMode::Insert => WriteModel::InsertOne(
                InsertOneModel::builder()
                    .namespace(namespace)
                    .document(document()?)
                    .build(),
            ),
            WriteMode::Upsert => {
                let mut set = document()?;
                // `_id` cannot be $set on an existing document; an upsert takes it from the filter.
                set.remove("_id");
                WriteModel::UpdateOne(
                    UpdateOneModel::builder()
                        .namespace(namespace)
                        .filter(filter()?)
                        .update(UpdateModifications::Document(doc! { "$set": set }))
                        .upsert(true)
                        .build(),
                )
            }
            WriteMode::Replace => WriteModel::ReplaceOne(
                ReplaceOneModel::builder()
                    .namespace(namespace)
                    .filter(filter()?)
                    .replacement(document()?)
                    .upsert(true)
                    .build(),
            ),
            WriteMode::Delete => WriteModel::DeleteOne(
                DeleteOneModel::builder()
                    .namespace(namespace)
                    .filter(filter()?)
                    .build(),
            ),
        })
    }

    fn collection(&self, r: &Record, value: &Value) -> Result<String, String> {
        let name = match &self.route {
            Route::Fixed(c) => return Ok(c.clone()),
            Route::Field(path) => match path.get(value) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(format!(
                        "`collection_field`: field {path} is {other}, not a collection name"
                    ));
                }
                None => {
                    return Err(format!(
                        "`collection_field`: the record has no field {path}"
                    ));
                }
            },
            Route::Header(h) => {
                let bytes = r.header(h).ok_or_else(|| {
                    format!("`collection_header`: the record has no header {h:?}")
                })?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| format!("`collection_header`: header {h:?} is not UTF-8"))?
            }
        };
        if name.is_empty() || name.contains(['\0', '$']) || name.starts_with("system.") {
            return Err(format!("{name:?} is not a collection name"));
        }
        Ok(name)
    }
}

/// The BSON value of a key or id field; a record without it cannot be matched.
fn field(path: &ValuePath, value: &Value, option: &str) -> Result<Bson, String> {
    match path.get(value) {
        Some(v) => bson_map::bson(v),
        None => Err(format!("`{option}`: the record has no field {path}")),
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Position;

    use super::*;

    fn planner(extra: &str) -> Planner {
        let table: toml::Table =
            toml::from_str(&format!("url = 'mongodb://h'\ndatabase = 'd'\n{extra}")).unwrap();
        let c: MongoSinkConfig = toml::Value::Table(table).try_into().unwrap();
        c.validate().unwrap();
        Planner::new(&c)
    }

    fn rec(v: &str) -> Record {
        Record::new(v.to_string(), Position::default())
    }

    #[test]
    fn modes_become_models() {
        let p = planner("collection = 'c'\nmode = 'upsert'\nkey = ['dev', 'site.id']");
        let WriteModel::UpdateOne(m) = p
            .plan(&rec(r#"{"dev":"a","site":{"id":3},"t":1}"#))
            .unwrap()
        else {
            panic!("not an update")
        };
        assert_eq!(m.filter, doc! { "dev": "a", "site.id": 3 });
        assert_eq!(m.upsert, Some(true));
        assert!(
            p.plan(&rec(r#"{"site":{"id":3}}"#))
                .unwrap_err()
                .contains("dev")
        );
        let p = planner("collection = 'c'\nid = 'n'");
        let WriteModel::InsertOne(m) = p.plan(&rec(r#"{"n":7}"#)).unwrap() else {
            panic!("not an insert")
        };
        assert_eq!(m.document.get("_id"), Some(&Bson::Int32(7)));
        let p = planner("collection = 'c'\nmode = 'delete'\nid = 'n'");
        assert!(matches!(
            p.plan(&rec(r#"{"n":7}"#)).unwrap(),
            WriteModel::DeleteOne(_)
        ));
    }

    #[test]
    fn collections_from_a_field_or_a_header() {
        let p = planner("collection_field = 'kind'");
        let WriteModel::InsertOne(m) = p.plan(&rec(r#"{"kind":"x"}"#)).unwrap() else {
            panic!()
        };
        assert_eq!(m.namespace.coll, "x");
        assert!(p.plan(&rec(r#"{"kind":1}"#)).is_err());
        assert!(p.plan(&rec(r#"{"kind":"a$b"}"#)).is_err());
        let p = planner("collection_header = 'to'");
        let mut r = rec("{}");
        assert!(p.plan(&r).is_err());
        r.headers.push(sluice_core::Header {
            name: "to".into(),
            value: "y".into(),
        });
        let WriteModel::InsertOne(m) = p.plan(&r).unwrap() else {
            panic!()
        };
        assert_eq!(m.namespace.coll, "y");
        assert_eq!(p.collection_spec(), "{header:to}");
    }

    #[test]
    fn bad_values_are_refused() {
        let p = planner("collection = 'c'");
        assert!(p.plan(&rec("not json")).unwrap_err().contains("JSON"));
        assert!(p.plan(&rec("[1]")).unwrap_err().contains("object"));
    }
}
