//! Table introspection (column names, types, which ones the database fills itself) and
//! `create_table` from a declared schema.

use sluice_core::ConnectorError;

use crate::config::ColumnDecl;
use crate::db::{Db, Dialect, Param};
use crate::error::connector_error;

/// How a column's values are converted before binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Boolean (MySQL `TINYINT(1)`).
    Bool,
    /// Integer.
    Int,
    /// Floating point.
    Float,
    /// Exact decimal.
    Decimal,
    /// Character data.
    Text,
    /// JSON document.
    Json,
    /// Binary data (base64 in JSON).
    Bytes,
    /// Timestamp without zone.
    Timestamp,
    /// Timestamp with zone.
    TimestampTz,
    /// Date.
    Date,
    /// Time of day.
    Time,
    /// UUID.
    Uuid,
    /// Anything else: passed as text for the database to convert.
    Other,
}

/// One column of the target table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name as the database spells it.
    pub name: String,
    /// The database's type name (used in PostgreSQL casts).
    pub sql_type: String,
    /// Conversion class.
    pub kind: Kind,
    /// Identity, auto-increment or generated: filled by the database.
    pub auto: bool,
}

/// The conversion class of a type name.
pub fn kind_of(dialect: Dialect, sql_type: &str) -> Kind {
    let t = sql_type.trim().to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| t.starts_with(p));
    if starts(&["bool", "tinyint(1)"]) {
        return Kind::Bool;
    }
    let int = if dialect == Dialect::Sqlite {
        t.contains("int")
    } else {
        starts(&[
            "int",
            "smallint",
            "bigint",
            "tinyint",
            "mediumint",
            "serial",
            "bigserial",
            "smallserial",
        ]) && !t.starts_with("interval")
    };
    if int {
        Kind::Int
    } else if starts(&["float", "double", "real"]) {
        Kind::Float
    } else if starts(&["numeric", "decimal", "dec("]) {
        Kind::Decimal
    } else if starts(&["json"]) {
        Kind::Json
    } else if t.contains("bytea") || t.contains("blob") || t.contains("binary") {
        Kind::Bytes
    } else if starts(&["timestamp with time zone", "timestamptz"]) {
        Kind::TimestampTz
    } else if starts(&["timestamp", "datetime"]) {
        if dialect == Dialect::MySql && t.starts_with("timestamp") {
            Kind::TimestampTz
        } else {
            Kind::Timestamp
        }
    } else if t == "date" {
        Kind::Date
    } else if starts(&["time"]) {
        Kind::Time
    } else if t == "uuid" {
        Kind::Uuid
    } else if t.contains("char")
        || t.contains("text")
        || t.contains("clob")
        || t == "name"
        || t == "citext"
    {
        Kind::Text
    } else {
        Kind::Other
    }
}

/// The columns of `table`, in table order; empty when the table does not exist.
pub async fn columns(db: &Db, table: &str) -> Result<Vec<Column>, ConnectorError> {
    let dialect = db.dialect();
    let (schema, name) = match table.rsplit_once('.') {
        Some((s, n)) => (Some(s.to_string()), n.to_string()),
        None => (None, table.to_string()),
    };
    let rows = match dialect {
        Dialect::Postgres => {
            db.fetch_text(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)::text,
                    (a.attidentity <> '' OR a.attgenerated <> ''
                     OR COALESCE(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%')::text
                 FROM pg_attribute a
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[Param::Text(Some(dialect.quote_path(table)))],
            )
            .await
        }
        Dialect::MySql => {
            db.fetch_text(
                "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR),
                    CASE WHEN extra LIKE '%auto_increment%' OR extra LIKE '%GENERATED%'
                         OR extra LIKE '%VIRTUAL%' OR extra LIKE '%STORED%'
                         THEN 'true' ELSE 'false' END
                 FROM information_schema.columns
                 WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
                 ORDER BY ordinal_position",
                &[Param::Text(schema), Param::Text(Some(name))],
            )
            .await
        }
        Dialect::Sqlite => {
            db.fetch_text(
                "SELECT name, type, CASE WHEN hidden IN (2, 3) THEN 'true' ELSE 'false' END
                 FROM pragma_table_xinfo(?1, ?2)",
                &[
                    Param::Text(Some(name)),
                    Param::Text(Some(schema.unwrap_or_else(|| "main".into()))),
                ],
            )
            .await
        }
    }
    .map_err(|e| connector_error(dialect, &format!("reading columns of {table}"), &e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter();
            let name = it.next().flatten().unwrap_or_default();
            let sql_type = it.next().flatten().unwrap_or_default();
            let auto = it.next().flatten().as_deref() == Some("true");
            Column {
                kind: kind_of(dialect, &sql_type),
                name,
                sql_type,
                auto,
            }
        })
        .collect())
}

/// `CREATE TABLE IF NOT EXISTS` from a declared schema, `key` as primary key.
pub fn create_table_sql(
    dialect: Dialect,
    table: &str,
    schema: &[ColumnDecl],
    key: &[String],
) -> String {
    let mut parts: Vec<String> = schema
        .iter()
        .map(|c| {
            let not_null = !c.nullable || key.contains(&c.name);
            format!(
                "{} {}{}",
                dialect.quote(&c.name),
                c.sql_type,
                if not_null { " NOT NULL" } else { "" }
            )
        })
        .collect();
    if !key.is_empty() {
        let k: Vec<String> = key.iter().map(|k| dialect.quote(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", k.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        dialect.quote_path(table),
        parts.join(", ")
    )
}

/// Run a `CREATE TABLE IF NOT EXISTS`, tolerating the race of two creators (PostgreSQL may
/// fail the loser with a unique violation on its catalog).
pub async fn create_if_missing(db: &Db, table: &str, ddl: &str) -> Result<(), ConnectorError> {
    if let Err(e) = db.exec(ddl, &[]).await
        && columns(db, table).await?.is_empty()
    {
        return Err(connector_error(
            db.dialect(),
            &format!("creating table {table}"),
            &e,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_common_types() {
        let pg = Dialect::Postgres;
        assert_eq!(kind_of(pg, "bigint"), Kind::Int);
        assert_eq!(kind_of(pg, "interval"), Kind::Other);
        assert_eq!(kind_of(pg, "point"), Kind::Other);
        assert_eq!(kind_of(pg, "timestamp with time zone"), Kind::TimestampTz);
        assert_eq!(kind_of(pg, "timestamp without time zone"), Kind::Timestamp);
        assert_eq!(kind_of(pg, "character varying(20)"), Kind::Text);
        assert_eq!(kind_of(pg, "numeric(10,2)"), Kind::Decimal);
        assert_eq!(kind_of(pg, "jsonb"), Kind::Json);
        assert_eq!(kind_of(Dialect::MySql, "tinyint(1)"), Kind::Bool);
        assert_eq!(kind_of(Dialect::MySql, "timestamp(6)"), Kind::TimestampTz);
        assert_eq!(kind_of(Dialect::MySql, "datetime(3)"), Kind::Timestamp);
        assert_eq!(kind_of(Dialect::Sqlite, "UNSIGNED BIG INT"), Kind::Int);
    }

    #[test]
    fn create_table_makes_key_not_null_and_primary() {
        let sql = create_table_sql(
            Dialect::Postgres,
            "t",
            &[
                ColumnDecl {
                    name: "id".into(),
                    sql_type: "BIGINT".into(),
                    nullable: true,
                },
                ColumnDecl {
                    name: "v".into(),
                    sql_type: "TEXT".into(),
                    nullable: true,
                },
            ],
            &["id".into()],
        );
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS \"t\" (\"id\" BIGINT NOT NULL, \"v\" TEXT, PRIMARY KEY (\"id\"))"
        );
    }
}
