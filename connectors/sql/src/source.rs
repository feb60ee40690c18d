//! The SQL source: incremental query polling, like the JDBC source connector's modes.
//!
//! - `incrementing`: rows whose `incrementing_column` is greater than the last one seen;
//!   position `Offset::Int(id)`.
//! - `timestamp`: rows whose `timestamp_column` is later than the last one seen; position
//!   `Offset::Text` of the timestamp in UTC, fixed width (`2026-11-25T10:00:00.000000Z`), so text
//!   order is time order. A poll that fills `batch_size` drops its trailing rows sharing the
//!   last timestamp (they come whole with the next poll), so equal timestamps are never split.
//! - `timestamp-incrementing`: both, `WHERE ts > :ts OR (ts = :ts AND id > :id)`; position
//!   `<timestamp>/<id + 2^63 as 20 digits>`, fixed width again.
//!
//! Positions live in the runtime's offset store (`owns_offsets` is false); the source resumes
//! strictly after the committed cursor, so committed rows are neither lost nor repeated. Rows
//! must become visible in cursor order (commit them in that order, or use a delay-free
//! single-writer table) for nothing to be skipped — the same contract as the JDBC connector.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use serde_json::Value;
use sluice_core::{Batch, Checkpoint, ConnectorError, Offset, Partition, Position, Record, Source};
use tokio::time::Instant;

use crate::config::{SourceMode, SqlSourceConfig};
use crate::db::{Db, Dialect, Param};
use crate::decode::{JsonRows, fetch_json};

/// The encoded timestamp column added to every query.
const TS: &str = "sluice_cursor_ts";
const ID_BIAS: i128 = 1 << 63;

/// Where the source stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Cursor {
    ts: Option<String>,
    id: Option<i64>,
}

/// The SQL source.
pub struct SqlSource {
    config: SqlSourceConfig,
    base_dir: PathBuf,
    partition: Partition,
    db: Option<Db>,
    cursor: Cursor,
    next_poll: Option<Instant>,
}

impl SqlSource {
    /// A source for a validated config (no I/O yet).
    pub fn new(config: SqlSourceConfig, base_dir: PathBuf) -> Result<Self, ConnectorError> {
        Dialect::of_url(&config.url)?;
        match (&config.table, &config.query) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(ConnectorError::config(
                    "set exactly one of `table` and `query`",
                ));
            }
        }
        let needs_id = matches!(
            config.mode,
            SourceMode::Incrementing | SourceMode::TimestampIncrementing
        );
        let needs_ts = matches!(
            config.mode,
            SourceMode::Timestamp | SourceMode::TimestampIncrementing
        );
        if needs_id && config.incrementing_column.is_none() {
            return Err(ConnectorError::config(
                "incrementing_column: required by this mode",
            ));
        }
        if needs_ts && config.timestamp_column.is_none() {
            return Err(ConnectorError::config(
                "timestamp_column: required by this mode",
            ));
        }
        if config.batch_size == 0 {
            return Err(ConnectorError::config("batch_size: must be at least 1"));
        }
        let partition: Partition = Arc::from(
            config
                .partition
                .clone()
                .or_else(|| config.table.clone())
                .unwrap_or_else(|| "query".into()),
        );
        Ok(Self {
            config,
            base_dir,
            partition,
            db: None,
            cursor: Cursor::default(),
            next_poll: None,
        })
    }

    fn offset(&self, cursor: &Cursor) -> Offset {
        match (self.config.mode, &cursor.ts, cursor.id) {
            (SourceMode::Incrementing, _, Some(id)) => Offset::Int(id),
            (SourceMode::Timestamp, Some(ts), _) => Offset::Text(ts.clone()),
            (_, Some(ts), Some(id)) => {
                Offset::Text(format!("{ts}/{:020}", i128::from(id) + ID_BIAS))
            }
            _ => Offset::Int(-1),
        }
    }

    fn parse_offset(&self, offset: &Offset) -> Result<Cursor, ConnectorError> {
        let bad = || {
            ConnectorError::config(format!(
                "the stored position {offset} does not fit mode {:?}; reset the job's offsets",
                self.config.mode
            ))
        };
        Ok(match (self.config.mode, offset) {
            (SourceMode::Incrementing, Offset::Int(id)) => Cursor {
                ts: None,
                id: Some(*id),
            },
            (SourceMode::Timestamp, Offset::Text(ts)) => Cursor {
                ts: Some(ts.clone()),
                id: None,
            },
            (SourceMode::TimestampIncrementing, Offset::Text(t)) => {
                let (ts, id) = t.rsplit_once('/').ok_or_else(bad)?;
                let id: i128 = id.parse().map_err(|_| bad())?;
                Cursor {
                    ts: Some(ts.to_string()),
                    id: Some(i64::try_from(id - ID_BIAS).map_err(|_| bad())?),
                }
            }
            _ => return Err(bad()),
        })
    }

    /// The polling query for the current cursor; `eq_ts` fetches every row at one timestamp.
    fn query(&self, dialect: Dialect, eq_ts: bool) -> (String, Vec<Param>) {
        let c = &self.config;
        let q = |col: &str| format!("q.{}", dialect.quote(col));
        let from = match (&c.table, &c.query) {
            (Some(t), _) => dialect.quote_path(t),
            (None, Some(query)) => format!("({query})"),
            _ => unreachable!("validated in new"),
        };
        let ts_col = c.timestamp_column.as_deref().map(q);
        let id_col = c.incrementing_column.as_deref().map(q);
        let enc = ts_col.as_ref().map(|col| match dialect {
            Dialect::Postgres => {
                format!("to_char(({col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            Dialect::MySql => format!("DATE_FORMAT({col}, '%Y-%m-%dT%H:%i:%s.%fZ')"),
            Dialect::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%fZ', {col})"),
        });
        // The column side and the parameter side of a timestamp comparison.
        let ts_cmp = |n: usize| -> (String, String) {
            let col = ts_col.clone().unwrap_or_default();
            match dialect {
                Dialect::Postgres => (
                    col,
                    format!("CAST({} AS timestamptz)", dialect.placeholder(n)),
                ),
                Dialect::MySql => (col, "?".into()),
                Dialect::Sqlite => (enc.clone().unwrap_or_default(), dialect.placeholder(n)),
            }
        };
        let ts_param = |ts: &str| match dialect {
            Dialect::MySql => Param::Text(Some(ts.trim_end_matches('Z').replacen('T', " ", 1))),
            _ => Param::Text(Some(ts.to_string())),
        };
        let mut select = "q.*".to_string();
        if let Some(enc) = &enc {
            select.push_str(&format!(", {enc} AS {TS}"));
        }
        let mut params = Vec::new();
        let mut cond = String::new();
        let order;
        let ts_order = match dialect {
            Dialect::Sqlite => TS.to_string(),
            _ => ts_col.clone().unwrap_or_default(),
        };
        match c.mode {
            SourceMode::Incrementing => {
                let id = id_col.clone().unwrap_or_default();
                if let Some(last) = self.cursor.id {
                    cond = format!("{id} > {}", dialect.placeholder(1));
                    params.push(Param::Int(Some(last)));
                }
                order = id;
            }
            SourceMode::Timestamp => {
                let (col, p) = ts_cmp(1);
                let ts_not_null = format!("{} IS NOT NULL", ts_col.clone().unwrap_or_default());
                if let Some(ts) = &self.cursor.ts {
                    cond = format!("{col} {} {p}", if eq_ts { "=" } else { ">" });
                    params.push(ts_param(ts));
                } else {
                    cond = ts_not_null;
                }
                order = ts_order;
            }
            SourceMode::TimestampIncrementing => {
                let id = id_col.clone().unwrap_or_default();
                if let (Some(ts), Some(last)) = (&self.cursor.ts, self.cursor.id) {
                    let (col, p1) = ts_cmp(1);
                    let (_, p1b) = ts_cmp(1);
                    let p2 = dialect.placeholder(2);
                    cond = format!("{col} > {p1} OR ({col} = {p1b} AND {id} > {p2})");
                    params.push(ts_param(ts));
                    if dialect == Dialect::MySql {
                        params.push(ts_param(ts));
                    }
                    params.push(Param::Int(Some(last)));
                } else {
                    cond = format!("{} IS NOT NULL", ts_col.clone().unwrap_or_default());
                }
                order = format!("{ts_order}, {id}");
            }
        }
        let mut sql = format!("SELECT {select} FROM {from} q");
        if !cond.is_empty() {
            sql.push_str(&format!(" WHERE {cond}"));
        }
        sql.push_str(&format!(" ORDER BY {order}"));
        if !eq_ts {
            sql.push_str(&format!(" LIMIT {}", self.config.batch_size));
        }
        (sql, params)
    }

    async fn poll(&mut self) -> Result<Vec<Record>, ConnectorError> {
        let db = self
            .db
            .clone()
            .ok_or_else(|| ConnectorError::internal("SQL source used before open"))?;
        let dialect = db.dialect();
        let (sql, params) = self.query(dialect, false);
        let mut rows = fetch_json(&db, &sql, &params).await?;
        if self.config.mode == SourceMode::Timestamp && rows.len() >= self.config.batch_size {
            // Do not split a group of equal timestamps across polls.
            let last = rows.last().and_then(|r| r.get(TS)).cloned();
            let keep = rows
                .iter()
                .rposition(|r| r.get(TS) != last.as_ref())
                .map_or(0, |i| i + 1);
            if keep > 0 {
                rows.truncate(keep);
            } else if let Some(Value::String(ts)) = last {
                // The whole page shares one timestamp: take every row at it.
                let saved = self.cursor.clone();
                self.cursor.ts = Some(ts);
                let (sql, params) = self.query(dialect, true);
                self.cursor = saved;
                rows = fetch_json(&db, &sql, &params).await?;
            }
        }
        self.records(rows)
    }

    fn records(&mut self, rows: JsonRows) -> Result<Vec<Record>, ConnectorError> {
        let mut out = Vec::with_capacity(rows.len());
        let mut cursor = self.cursor.clone();
        for mut row in rows {
            let mut timestamp = None;
            if self.config.timestamp_column.is_some()
                && self.config.mode != SourceMode::Incrementing
            {
                let ts = match row.remove(TS) {
                    Some(Value::String(ts)) => ts,
                    _ => {
                        return Err(ConnectorError::external(
                            "a row has a NULL or unreadable timestamp cursor",
                        ));
                    }
                };
                timestamp = DateTime::parse_from_rfc3339(&ts)
                    .ok()
                    .map(|t| t.timestamp_millis());
                cursor.ts = Some(ts);
            } else {
                row.remove(TS);
            }
            if let Some(col) = &self.config.incrementing_column
                && self.config.mode != SourceMode::Timestamp
            {
                let id = row.get(col).and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                });
                cursor.id = Some(id.ok_or_else(|| {
                    ConnectorError::config(format!(
                        "incrementing_column: {col:?} is missing, NULL or not an integer in a row"
                    ))
                })?);
            }
            let value = serde_json::to_vec(&Value::Object(row))
                .map_err(|e| ConnectorError::internal(format!("encoding row: {e}")))?;
            let mut record = Record::new(
                value,
                Position {
                    partition: self.partition.clone(),
                    offset: self.offset(&cursor),
                },
            );
            record.timestamp = timestamp;
            out.push(record);
        }
        self.cursor = cursor;
        Ok(out)
    }
}

#[async_trait]
impl Source for SqlSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        if let Some(offset) = resume.as_ref().and_then(|cp| cp.get(&self.partition)) {
            self.cursor = self.parse_offset(offset)?;
            tracing::info!(partition = %self.partition, position = %offset, "SQL source resumes after the committed cursor.");
        }
        self.db = Some(
            Db::connect(
                &self.config.url,
                self.config.tls.as_ref(),
                &self.base_dir,
                1,
            )
            .await?,
        );
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        loop {
            if let Some(at) = self.next_poll {
                tokio::time::sleep_until(at).await;
                self.next_poll = None;
            }
            let records = self.poll().await?;
            if !records.is_empty() {
                return Ok(Some(Batch::new(records)));
            }
            if self.config.stop_when_caught_up {
                return Ok(None);
            }
            self.next_poll =
                Some(Instant::now() + self.config.poll_interval.0.max(Duration::from_millis(1)));
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(mode: &str) -> SqlSource {
        let cfg: SqlSourceConfig = serde_json::from_value(serde_json::json!({
            "url": "postgres://h/db", "table": "t", "mode": mode,
            "incrementing_column": "id", "timestamp_column": "ts"
        }))
        .unwrap();
        SqlSource::new(cfg, ".".into()).unwrap()
    }

    #[test]
    fn timestamp_id_positions_order_like_their_cursors_and_round_trip() {
        let s = source("timestamp-incrementing");
        let c = |ts: &str, id: i64| Cursor {
            ts: Some(ts.into()),
            id: Some(id),
        };
        let a = c("2026-11-25T10:00:00.000000Z", -5);
        let b = c("2026-11-25T10:00:00.000000Z", 3);
        let d = c("2026-11-25T10:00:00.000000Z", 12);
        let e = c("2026-11-25T10:00:01.000000Z", 1);
        let offsets: Vec<Offset> = [&a, &b, &d, &e].iter().map(|c| s.offset(c)).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert_eq!(s.parse_offset(&offsets[0]).unwrap(), a);
        assert_eq!(s.parse_offset(&offsets[3]).unwrap(), e);
        assert!(s.parse_offset(&Offset::Int(3)).is_err());
    }

    #[test]
    fn polling_queries_per_mode() {
        let mut s = source("timestamp-incrementing");
        s.cursor = Cursor {
            ts: Some("2026-11-25T10:00:00.000000Z".into()),
            id: Some(7),
        };
        let (sql, params) = s.query(Dialect::Postgres, false);
        assert!(sql.contains("q.\"ts\" > CAST($1 AS timestamptz) OR (q.\"ts\" = CAST($1 AS timestamptz) AND q.\"id\" > $2)"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY q.\"ts\", q.\"id\" LIMIT 1000"),
            "{sql}"
        );
        assert_eq!(params.len(), 2);
        let (_, params) = s.query(Dialect::MySql, false);
        assert_eq!(
            params[0],
            Param::Text(Some("2026-11-25 10:00:00.000000".into()))
        );
        assert_eq!(params.len(), 3);
        let mut s = source("incrementing");
        let (sql, params) = s.query(Dialect::Sqlite, false);
        assert!(!sql.contains("WHERE") && params.is_empty(), "{sql}");
        s.cursor.id = Some(41);
        let (sql, _) = s.query(Dialect::Sqlite, false);
        assert!(
            sql.contains("WHERE q.\"id\" > ?1 ORDER BY q.\"id\""),
            "{sql}"
        );
        assert!(
            SqlSource::new(
                serde_json::from_value(serde_json::json!({"url": "sqlite::memory:", "mode": "incrementing", "incrementing_column": "id"})).unwrap(),
                ".".into()
            )
            .is_err(),
            "table or query is required"
        );
    }
}
