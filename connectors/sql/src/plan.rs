//! Planning the SQL sink's writes: which column takes which field of a record (`columns`, or
//! every writable column by its own name), records → operations (rows to insert or upsert, keys
//! to delete on tombstones), and the SQL text of each statement shape, built once and cached.
//! Running them inside transactions is `sink`'s part.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sluice_core::{ConnectorError, Record, ValuePath};

use crate::config::{SqlSinkConfig, WriteMode};
use crate::db::{Db, Dialect, Param};
use crate::schema::{self, Column, Kind};
use crate::values::to_param;

/// A mapped column: where its value comes from and how it is converted.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) column: Column,
    pub(crate) field: Field,
}

/// Where a column's value comes from.
#[derive(Clone, Debug)]
pub(crate) enum Field {
    /// The top-level field named like the column (no `columns` mapping).
    Named(String),
    /// A field path from `columns`.
    Path(ValuePath),
}

impl Field {
    fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match self {
            Field::Named(name) => value.get(name),
            Field::Path(path) => path.get(value),
        }
    }

    /// The field's value, moved out of `value` (left `null` there).
    fn take(&self, value: &mut Value) -> Option<Value> {
        let v = match self {
            Field::Named(name) => value.get_mut(name),
            Field::Path(path) => path.get_mut(value),
        };
        v.map(std::mem::take)
    }

    /// The path from the document's root.
    fn segments(&self) -> &[String] {
        match self {
            Field::Named(name) => std::slice::from_ref(name),
            Field::Path(path) => path.segments(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OpKind {
    Insert,
    Delete,
}

#[derive(Debug)]
pub(crate) struct Op {
    /// Index of the record in the written slice.
    pub(crate) index: usize,
    pub(crate) kind: OpKind,
    pub(crate) params: Vec<Param>,
}

/// How the fields of a record reach the targets.
#[derive(Debug)]
enum Extract {
    /// Every target takes the top-level field of its column's name: the column's position
    /// by name; only those fields are parsed (see `fields`).
    Named(HashMap<String, usize>),
    /// The whole document is parsed; with `disjoint` (no target's field inside another's)
    /// each value is moved out of it, otherwise copied.
    Tree { disjoint: bool },
}

/// Statements prepared for the table.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) dialect: Dialect,
    pub(crate) table: String,
    pub(crate) targets: Vec<Target>,
    /// Positions of the key columns in `targets`.
    pub(crate) key_idx: Vec<usize>,
    /// How a record's fields reach the targets.
    extract: Extract,
    pub(crate) insert_rows: usize,
    pub(crate) delete_rows: usize,
    pub(crate) sql: HashMap<(OpKind, usize), String>,
    pub(crate) mode: WriteMode,
    /// At-least-once insert: a duplicate key equal to the stored row is a replay, not a reject.
    pub(crate) replays_are_written: bool,
    /// `SELECT` finding a row equal to an insert in every written column (built on first use).
    pub(crate) same_row_sql: Option<String>,
}

impl Plan {
    /// Look the table up (creating it with `create_table`) and map its columns to fields.
    pub(crate) async fn build(db: &Db, cfg: &SqlSinkConfig) -> Result<Plan, ConnectorError> {
        let dialect = db.dialect();
        if cfg.create_table {
            let ddl = schema::create_table_sql(dialect, &cfg.table, &cfg.schema, &cfg.key);
            schema::create_if_missing(db, &cfg.table, &ddl).await?;
        }
        let columns = schema::columns(db, &cfg.table).await?;
        if columns.is_empty() {
            return Err(ConnectorError::config(format!(
                "table: {} has no table {:?} (create it, or set create_table = true with a schema)",
                crate::db::redact(&cfg.url),
                cfg.table
            )));
        }
        let find = |name: &str| columns.iter().find(|c| c.name == name).cloned();
        let mut targets: Vec<Target> = match &cfg.columns {
            Some(map) => map
                .iter()
                .map(|(col, fld)| {
                    find(col)
                        .map(|column| Target {
                            column,
                            field: Field::Path(fld.clone()),
                        })
                        .ok_or_else(|| {
                            ConnectorError::config(format!(
                                "columns: table {:?} has no column {col:?}",
                                cfg.table
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
            None => columns
                .iter()
                .filter(|c| !c.auto)
                .map(|c| Target {
                    column: c.clone(),
                    field: Field::Named(c.name.clone()),
                })
                .collect(),
        };
        let mut key_idx = Vec::new();
        for k in &cfg.key {
            let idx = match targets.iter().position(|t| &t.column.name == k) {
                Some(i) => i,
                None => {
                    let column = find(k).ok_or_else(|| {
                        ConnectorError::config(format!(
                            "key: table {:?} has no column {k:?}",
                            cfg.table
                        ))
                    })?;
                    targets.push(Target {
                        column,
                        field: Field::Named(k.clone()),
                    });
                    targets.len() - 1
                }
            };
            key_idx.push(idx);
        }
        if targets.is_empty() {
            return Err(ConnectorError::config("columns: no column to write"));
        }
        let max = dialect.efficient_params();
        let named: Option<HashMap<String, usize>> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| match &t.field {
                Field::Named(name) => Some((name.clone(), i)),
                Field::Path(_) => None,
            })
            .collect();
        let extract = match named.filter(|n| n.len() == targets.len()) {
            Some(index) => Extract::Named(index),
            None => Extract::Tree {
                disjoint: targets.iter().enumerate().all(|(i, a)| {
                    targets[i + 1..].iter().all(|b| {
                        let (a, b) = (a.field.segments(), b.field.segments());
                        let n = a.len().min(b.len());
                        a[..n] != b[..n]
                    })
                }),
            },
        };
        Ok(Plan {
            dialect,
            table: dialect.quote_path(&cfg.table),
            insert_rows: cfg.statement_rows.min(max / targets.len()).max(1),
            delete_rows: cfg.statement_rows.min(max / key_idx.len().max(1)).max(1),
            targets,
            key_idx,
            extract,
            sql: HashMap::new(),
            mode: cfg.mode,
            replays_are_written: false,
            same_row_sql: None,
        })
    }

    /// Turn records into operations; records that cannot be turned into a row are rejected.
    pub(crate) fn prepare(
        &self,
        records: &[Record],
        cfg: &SqlSinkConfig,
    ) -> (Vec<Op>, Vec<(usize, String)>) {
        let mut ops = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match self.op(index, record, cfg) {
                Ok(op) => ops.push(op),
                Err(reason) => rejected.push((index, reason)),
            }
        }
        if cfg.mode == WriteMode::Upsert {
            // One operation per key and statement batch: the last one wins (a multi-row upsert
            // may not touch a row twice).
            let mut seen = HashSet::new();
            let mut keep = vec![false; ops.len()];
            for (i, op) in ops.iter().enumerate().rev() {
                let key: Vec<&Param> = match op.kind {
                    OpKind::Insert => self.key_idx.iter().map(|&k| &op.params[k]).collect(),
                    OpKind::Delete => op.params.iter().collect(),
                };
                keep[i] = seen.insert(format!("{key:?}"));
            }
            let mut i = 0;
            ops.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        (ops, rejected)
    }

    /// The rows of `records` (the first at `index` in the write) as inserts, or `None` when
    /// one of them is not a row to insert (refused, or a tombstone).
    pub(crate) fn inserts(
        &self,
        index: usize,
        records: &[Record],
        cfg: &SqlSinkConfig,
    ) -> Option<Vec<Op>> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.op(index + i, r, cfg)
                    .ok()
                    .filter(|op| op.kind == OpKind::Insert)
            })
            .collect()
    }

    fn op(&self, index: usize, record: &Record, cfg: &SqlSinkConfig) -> Result<Op, String> {
        if record.value.is_empty() {
            if !cfg.delete_on_tombstone {
                return Err("empty value (a tombstone) and delete_on_tombstone is off".into());
            }
            let key = record
                .key
                .as_ref()
                .ok_or("tombstone without a record key")?;
            let key: Value = serde_json::from_slice(key)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(key).into_owned()));
            let mut params = Vec::with_capacity(self.key_idx.len());
            for &k in &self.key_idx {
                let t = &self.targets[k];
                let v = match &key {
                    Value::Object(_) => key.get(&t.column.name),
                    scalar if self.key_idx.len() == 1 => Some(scalar),
                    _ => None,
                };
                let v =
                    v.ok_or_else(|| format!("tombstone key lacks column {:?}", t.column.name))?;
                params.push(
                    to_param(self.dialect, t.column.kind, Some(v.clone()))
                        .map_err(|e| format!("column {:?}: {e}", t.column.name))?,
                );
            }
            return Ok(Op {
                index,
                kind: OpKind::Delete,
                params,
            });
        }
        let values: Vec<Option<Value>> = match &self.extract {
            Extract::Named(index) => {
                crate::fields::top_level(&record.value, index, self.targets.len())?
            }
            Extract::Tree { disjoint } => {
                let mut value: Value = serde_json::from_slice(&record.value)
                    .map_err(|e| format!("value is not JSON: {e}"))?;
                if !value.is_object() {
                    return Err("value is not a JSON object".into());
                }
                self.targets
                    .iter()
                    .map(|t| match disjoint {
                        true => t.field.take(&mut value),
                        false => t.field.get(&value).cloned(),
                    })
                    .collect()
            }
        };
        let mut params = Vec::with_capacity(self.targets.len());
        for (t, v) in self.targets.iter().zip(values) {
            params.push(
                to_param(self.dialect, t.column.kind, v)
                    .map_err(|e| format!("column {:?}: {e}", t.column.name))?,
            );
        }
        Ok(Op {
            index,
            kind: OpKind::Insert,
            params,
        })
    }

    /// The value expression of a column for parameter `n` (each parameter of the plan's
    /// statements is used once, in order).
    fn expr(&self, column: &Column, n: usize) -> String {
        let p = self.dialect.sequential_placeholder(n);
        if self.dialect == Dialect::Postgres && !matches!(column.kind, Kind::Text | Kind::Bytes) {
            format!("CAST({p} AS {})", column.sql_type)
        } else {
            p
        }
    }

    pub(crate) fn sql(&mut self, kind: OpKind, rows: usize) -> String {
        let mode = self.mode;
        if let Some(s) = self.sql.get(&(kind, rows)) {
            return s.clone();
        }
        let d = self.dialect;
        let mut n = 0;
        let sql = match kind {
            OpKind::Insert => {
                let cols: Vec<String> = self
                    .targets
                    .iter()
                    .map(|t| d.quote(&t.column.name))
                    .collect();
                let mut values = Vec::with_capacity(rows);
                for _ in 0..rows {
                    let row: Vec<String> = self
                        .targets
                        .iter()
                        .map(|t| {
                            n += 1;
                            self.expr(&t.column, n)
                        })
                        .collect();
                    values.push(format!("({})", row.join(", ")));
                }
                let mut sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    self.table,
                    cols.join(", "),
                    values.join(", ")
                );
                if mode == WriteMode::Upsert {
                    let keys: Vec<String> = self
                        .key_idx
                        .iter()
                        .map(|&k| d.quote(&self.targets[k].column.name))
                        .collect();
                    let rest: Vec<String> = self
                        .targets
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !self.key_idx.contains(i))
                        .map(|(_, t)| d.quote(&t.column.name))
                        .collect();
                    sql.push_str(&match (d, rest.is_empty()) {
                        (Dialect::MySql, false) => format!(
                            " ON DUPLICATE KEY UPDATE {}",
                            rest.iter()
                                .map(|c| format!("{c} = VALUES({c})"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        (Dialect::MySql, true) => {
                            format!(" ON DUPLICATE KEY UPDATE {} = {}", keys[0], keys[0])
                        }
                        (_, false) => format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            keys.join(", "),
                            rest.iter()
                                .map(|c| format!("{c} = excluded.{c}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        (_, true) => format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
                    });
                }
                sql
            }
            OpKind::Delete => {
                let mut conds = Vec::with_capacity(rows);
                for _ in 0..rows {
                    let c: Vec<String> = self
                        .key_idx
                        .iter()
                        .map(|&k| {
                            n += 1;
                            let col = &self.targets[k].column;
                            format!("{} = {}", d.quote(&col.name), self.expr(col, n))
                        })
                        .collect();
                    conds.push(format!("({})", c.join(" AND ")));
                }
                format!("DELETE FROM {} WHERE {}", self.table, conds.join(" OR "))
            }
        };
        let full = match kind {
            OpKind::Insert => self.insert_rows,
            OpKind::Delete => self.delete_rows,
        };
        if rows == full || rows == 1 {
            self.sql.insert((kind, rows), sql.clone());
        }
        sql
    }

    /// `SELECT` finding a row equal to an insert in every written column. Compared the way the
    /// database stores the values: PostgreSQL through the column type's text form (`json` has
    /// no `=`), MySQL with JSON parsed, SQLite with the column's affinity; NULLs compare equal.
    pub(crate) fn same_row_sql(&mut self) -> String {
        let d = self.dialect;
        match &self.same_row_sql {
            Some(sql) => sql.clone(),
            None => {
                let conds: Vec<String> = self
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let col = d.quote(&t.column.name);
                        let p = self.expr(&t.column, i + 1);
                        match (d, t.column.kind) {
                            (Dialect::Postgres, Kind::Text | Kind::Bytes) => {
                                format!("{col} IS NOT DISTINCT FROM {p}")
                            }
                            (Dialect::Postgres, _) => {
                                format!(
                                    "CAST({col} AS TEXT) IS NOT DISTINCT FROM CAST({p} AS TEXT)"
                                )
                            }
                            (Dialect::MySql, Kind::Json) => format!("{col} <=> CAST({p} AS JSON)"),
                            (Dialect::MySql, _) => format!("{col} <=> {p}"),
                            (Dialect::Sqlite, _) => format!("{col} IS {p}"),
                        }
                    })
                    .collect();
                let one = if d == Dialect::MySql {
                    "CAST(1 AS CHAR)"
                } else {
                    "CAST(1 AS TEXT)"
                };
                let sql = format!(
                    "SELECT {one} FROM {} WHERE {} LIMIT 1",
                    self.table,
                    conds.join(" AND ")
                );
                self.same_row_sql = Some(sql.clone());
                sql
            }
        }
    }
}
