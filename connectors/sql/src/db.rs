//! Connections to the three databases behind one small enum, with the dialect differences
//! (quoting, placeholders, parameter limits) in one place.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sluice_core::ConnectorError;
use sluice_core::job::RetryConfig;
use sluice_core::local::{canonical_target, percent_decode};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{MySql, Postgres, Sqlite, Transaction};

use crate::config::{TlsConfig, TlsMode};
use crate::error::connect_error;

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The dialect of a URL, by scheme.
    pub fn of_url(url: &str) -> Result<Self, ConnectorError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            "sqlite" => Ok(Dialect::Sqlite),
            _ => Err(ConnectorError::config(format!(
                "url: unsupported scheme {scheme:?} (use postgres://, mysql://, mariadb:// or sqlite://)"
            ))),
        }
    }

    /// Quote one identifier.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// Quote a possibly schema-qualified name (`schema.table`).
    pub fn quote_path(self, name: &str) -> String {
        name.split('.')
            .map(|p| self.quote(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The placeholder of the `n`-th parameter (1-based), for statements that use one twice.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql => "?".into(),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// The placeholder of the `n`-th parameter of a statement that uses each parameter once, in
    /// order. SQLite's is the anonymous `?`: the name of a numbered `?NNN` is found by a linear
    /// scan of the statement's parameter list, and sqlx asks for each parameter's name on every
    /// execution, which made binding quadratic in the statement's size.
    pub fn sequential_placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".into(),
            _ => self.placeholder(n),
        }
    }

    /// Most bind parameters in one statement.
    pub fn max_params(self) -> usize {
        match self {
            Dialect::Postgres | Dialect::MySql => 65_535,
            Dialect::Sqlite => 32_766,
        }
    }

    /// Parameters per statement where writing is fastest. For the servers: as many as allowed
    /// (fewer round trips). SQLite is in-process: past about a thousand parameters a larger
    /// statement gains nothing (measured with a plain sqlx loop: 1.60 s for 300,000 rows at
    /// 121 parameters per statement, 1.13 s at 990, 1.02 s at 11,000).
    pub fn efficient_params(self) -> usize {
        match self {
            Dialect::Postgres | Dialect::MySql => self.max_params(),
            Dialect::Sqlite => 1024,
        }
    }
}

/// A bound parameter. PostgreSQL and MySQL get text (the server converts, and a value it cannot
/// convert is a rejected row); SQLite gets native values (it is dynamically typed).
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// Text or NULL.
    Text(Option<String>),
    /// Bytes or NULL.
    Bytes(Option<Vec<u8>>),
    /// An integer or NULL, bound as a 64-bit integer.
    Int(Option<i64>),
    /// A float or NULL, bound as a double.
    Float(Option<f64>),
}

/// A connection pool to one of the databases.
#[derive(Clone, Debug)]
pub enum Db {
    /// PostgreSQL.
    Pg(PgPool),
    /// MySQL / MariaDB.
    My(MySqlPool),
    /// SQLite.
    Lite(SqlitePool),
}

/// An open transaction.
pub enum Tx {
    /// PostgreSQL.
    Pg(Transaction<'static, Postgres>),
    /// MySQL / MariaDB.
    My(Transaction<'static, MySql>),
    /// SQLite.
    Lite(Transaction<'static, Sqlite>),
}

/// Binds every parameter of `$params` to the query `$q`, each with its own type.
macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text(v) => q.bind(v.as_deref()),
                Param::Bytes(v) => q.bind(v.as_deref()),
                Param::Int(v) => q.bind(*v),
                Param::Float(v) => q.bind(*v),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

macro_rules! fetch_text_rows {
    ($exec:expr, $sql:expr, $params:expr) => {{
        use sqlx::Row;
        let rows = bind_all!(sqlx::query($sql), $params)
            .fetch_all($exec)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cols = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                cols.push(row.try_get::<Option<String>, _>(i)?);
            }
            out.push(cols);
        }
        Ok(out)
    }};
}

/// How long opening a server database waits for its first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open one connection, once, before making the pool: a pool retries a refused connection
/// until its acquire timeout and then reports only "pool timed out", so an unreachable server
/// would look like a slow one for 30 s. This fails at once with the real cause.
async fn probe<O: sqlx::ConnectOptions>(
    opts: &O,
    dialect: Dialect,
    url: &str,
) -> Result<(), ConnectorError>
where
    O::Connection: Sized,
{
    use sqlx::Connection as _;
    match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
        Ok(Ok(conn)) => {
            // Only a probe: the pool makes its own connections.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(connect_error(dialect, url, &e)),
        Err(_) => Err(ConnectorError::transient(format!(
            "connecting to {}: no answer within {}s",
            redact(url),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Rows of text columns (queries cast what they select to text).
pub type TextRows = Vec<Vec<Option<String>>>;

/// How long one SQLite statement waits for a lock that another connection holds (SQLite's busy
/// timeout) when the caller retries under `retry`: one backoff step, and never past the budget.
///
/// The busy handler is a retry loop hidden inside a single statement: while it waits, the runtime
/// sees one slow write, logs nothing and cannot apply its budget. A fixed 30 s made a job with
/// `max_elapsed = "5s"` wait 30 s before its first retry. Capped at `max_backoff`, a lock held
/// for longer surfaces as SQLITE_BUSY ("database is locked"), a transient error the runtime
/// retries with backoff and reports when the budget is spent, overrunning `max_elapsed` by at
/// most one such wait. It is not zero: brief contention (another writer's short transaction, a
/// WAL checkpoint) is still absorbed inside the statement instead of costing a backoff.
pub fn sqlite_busy_timeout(retry: &RetryConfig) -> Duration {
    retry.max_backoff.0.min(retry.max_elapsed.0)
}

impl Db {
    /// Connect to the database a URL names, for a caller retrying under the default policy.
    pub async fn connect(
        url: &str,
        tls: Option<&TlsConfig>,
        base_dir: &Path,
        max_connections: u32,
    ) -> Result<Db, ConnectorError> {
        Self::connect_within(url, tls, base_dir, max_connections, &RetryConfig::default()).await
    }

    /// Connect to the database a URL names, for a caller whose failures are retried under
    /// `retry` (SQLite waits for a lock at most [`sqlite_busy_timeout`]).
    pub async fn connect_within(
        url: &str,
        tls: Option<&TlsConfig>,
        base_dir: &Path,
        max_connections: u32,
        retry: &RetryConfig,
    ) -> Result<Db, ConnectorError> {
        let bad = |e: sqlx::Error| ConnectorError::config(format!("url: {e}"));
        let dialect = Dialect::of_url(url)?;
        let conn_err = |e: sqlx::Error| connect_error(dialect, url, &e);
        let acquire = Duration::from_secs(30);
        match dialect {
            Dialect::Postgres => {
                let mut opts = PgConnectOptions::from_str(url).map_err(bad)?;
                if let Some(tls) = tls {
                    opts = opts.ssl_mode(match tls.mode {
                        TlsMode::Disable => PgSslMode::Disable,
                        TlsMode::Prefer => PgSslMode::Prefer,
                        TlsMode::Require => PgSslMode::Require,
                        TlsMode::VerifyCa => PgSslMode::VerifyCa,
                        TlsMode::VerifyFull => PgSslMode::VerifyFull,
                    });
                    if let Some(ca) = &tls.ca_file {
                        opts = opts.ssl_root_cert(base_dir.join(ca));
                    }
                }
                probe(&opts, dialect, url).await?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(opts)
                    .await
                    .map_err(conn_err)?;
                Ok(Db::Pg(pool))
            }
            Dialect::MySql => {
                let url = url.replacen("mariadb:", "mysql:", 1);
                let mut opts = MySqlConnectOptions::from_str(&url).map_err(bad)?;
                if let Some(tls) = tls {
                    opts = opts.ssl_mode(match tls.mode {
                        TlsMode::Disable => MySqlSslMode::Disabled,
                        TlsMode::Prefer => MySqlSslMode::Preferred,
                        TlsMode::Require => MySqlSslMode::Required,
                        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
                        TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                    });
                    if let Some(ca) = &tls.ca_file {
                        opts = opts.ssl_ca(base_dir.join(ca));
                    }
                }
                probe(&opts, dialect, &url).await?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(opts)
                    .await
                    .map_err(conn_err)?;
                Ok(Db::My(pool))
            }
            Dialect::Sqlite => {
                if tls.is_some() {
                    return Err(ConnectorError::config("tls: SQLite has no TLS"));
                }
                let opts = if let Some(path) = sqlite_path(url) {
                    let path = base_dir.join(path);
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| ConnectorError::io("creating database directory", &e))?;
                    }
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                } else {
                    SqliteConnectOptions::from_str("sqlite::memory:").map_err(bad)?
                };
                let opts = opts.busy_timeout(sqlite_busy_timeout(retry));
                // One connection: SQLite has a single writer, and an in-memory database lives
                // in its connection.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(acquire)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(opts)
                    .await
                    .map_err(conn_err)?;
                Ok(Db::Lite(pool))
            }
        }
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Pg(_) => Dialect::Postgres,
            Db::My(_) => Dialect::MySql,
            Db::Lite(_) => Dialect::Sqlite,
        }
    }

    /// Start a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Pg(p) => Tx::Pg(p.begin().await?),
            Db::My(p) => Tx::My(p.begin().await?),
            Db::Lite(p) => Tx::Lite(p.begin().await?),
        })
    }

    /// Run a statement outside a transaction.
    pub async fn exec(&self, sql: &str, params: &[Param]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Pg(p) => bind_all!(sqlx::query(sql), params)
                .execute(p)
                .await?
                .rows_affected(),
            Db::My(p) => bind_all!(sqlx::query(sql), params)
                .execute(p)
                .await?
                .rows_affected(),
            Db::Lite(p) => bind_all!(sqlx::query(sql), params)
                .execute(p)
                .await?
                .rows_affected(),
        })
    }

    /// Rows of a query whose columns are all text (or NULL).
    pub async fn fetch_text(&self, sql: &str, params: &[Param]) -> Result<TextRows, sqlx::Error> {
        match self {
            Db::Pg(p) => fetch_text_rows!(p, sql, params),
            Db::My(p) => fetch_text_rows!(p, sql, params),
            Db::Lite(p) => fetch_text_rows!(p, sql, params),
        }
    }

    /// Close the pool.
    pub async fn close(&self) {
        match self {
            Db::Pg(p) => p.close().await,
            Db::My(p) => p.close().await,
            Db::Lite(p) => p.close().await,
        }
    }
}

impl Tx {
    /// Run a statement; `persistent` caches its prepared form (for statements run again).
    pub async fn exec<'p>(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = &'p Param>,
        persistent: bool,
    ) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Pg(tx) => bind_all!(sqlx::query(sql).persistent(persistent), params)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::My(tx) => bind_all!(sqlx::query(sql).persistent(persistent), params)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Lite(tx) => bind_all!(sqlx::query(sql).persistent(persistent), params)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Run a statement without parameters through the simple protocol (savepoints).
    pub async fn raw(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        match self {
            Tx::Pg(tx) => tx.execute(sql).await.map(|_| ()),
            Tx::My(tx) => tx.execute(sql).await.map(|_| ()),
            Tx::Lite(tx) => tx.execute(sql).await.map(|_| ()),
        }
    }

    /// Rows of a text-only query inside the transaction.
    pub async fn fetch_text(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<TextRows, sqlx::Error> {
        match self {
            Tx::Pg(tx) => fetch_text_rows!(&mut **tx, sql, params),
            Tx::My(tx) => fetch_text_rows!(&mut **tx, sql, params),
            Tx::Lite(tx) => fetch_text_rows!(&mut **tx, sql, params),
        }
    }

    /// Commit.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::My(tx) => tx.commit().await,
            Tx::Lite(tx) => tx.commit().await,
        }
    }

    /// Roll back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.rollback().await,
            Tx::My(tx) => tx.rollback().await,
            Tx::Lite(tx) => tx.rollback().await,
        }
    }
}

/// What a URL's database is, never its credentials: `postgres://host:port/database`,
/// `mysql://host:port/database` (MariaDB too), or `sqlite://` and the file's canonical path.
/// Defaults (port, database from the user name, `PG*` variables) are filled in the way the
/// connection fills them, so two spellings of one database agree where the URL can tell. `None`
/// for an in-memory SQLite database (nothing outlives the connection) or an unparsable URL.
pub fn database_identity(url: &str, base_dir: &Path) -> Option<String> {
    match Dialect::of_url(url).ok()? {
        Dialect::Postgres => {
            let o = PgConnectOptions::from_str(url).ok()?;
            let db = o.get_database().unwrap_or(o.get_username());
            Some(match o.get_socket() {
                Some(dir) => format!("postgres://{}/{db}", dir.display()),
                None => format!("postgres://{}:{}/{db}", o.get_host(), o.get_port()),
            })
        }
        Dialect::MySql => {
            let o = MySqlConnectOptions::from_str(&url.replacen("mariadb:", "mysql:", 1)).ok()?;
            let db = o.get_database().unwrap_or_default();
            Some(match o.get_socket() {
                Some(sock) => format!("mysql://{}/{db}", sock.display()),
                None => format!("mysql://{}:{}/{db}", o.get_host(), o.get_port()),
            })
        }
        Dialect::Sqlite => {
            let path = sqlite_path(url)?;
            Some(format!(
                "sqlite://{}",
                canonical_target(&base_dir.join(path)).display()
            ))
        }
    }
}

/// A table as identified within its database: MySQL's unqualified names get the URL's
/// database (`t` in `mysql://h/test` is `test.t`, as spelling it out would be); other names as
/// written.
pub fn table_identity(url: &str, table: &str) -> String {
    if Dialect::of_url(url).ok() == Some(Dialect::MySql)
        && !table.contains('.')
        && let Ok(o) = MySqlConnectOptions::from_str(&url.replacen("mariadb:", "mysql:", 1))
        && let Some(db) = o.get_database()
    {
        return format!("{db}.{table}");
    }
    table.to_string()
}

/// The URL query parameters that name local files: certificates and keys (PostgreSQL's
/// libpq names, MySQL's); sockets are read from the parsed options.
const URL_FILE_PARAMS: [&str; 6] = [
    "sslrootcert",
    "sslcert",
    "sslkey",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
];

/// The local files a connection to `url` with `tls` uses, as it will open them, each with the
/// field that names it: a SQLite database file, a Unix socket, certificates and keys named in
/// the URL or in `tls.ca_file`.
pub fn local_files(
    url: &str,
    tls: Option<&TlsConfig>,
    base_dir: &Path,
) -> Vec<(&'static str, std::path::PathBuf)> {
    let url_field = "url";
    let mut uses = Vec::new();
    match Dialect::of_url(url) {
        Ok(Dialect::Sqlite) => {
            if let Some(path) = sqlite_path(url) {
                uses.push((url_field, base_dir.join(path)));
            }
        }
        Ok(Dialect::Postgres) => {
            if let Some(socket) = PgConnectOptions::from_str(url)
                .ok()
                .and_then(|o| o.get_socket().cloned())
            {
                uses.push((url_field, socket));
            }
        }
        Ok(Dialect::MySql) => {
            if let Some(socket) =
                MySqlConnectOptions::from_str(&url.replacen("mariadb:", "mysql:", 1))
                    .ok()
                    .and_then(|o| o.get_socket().cloned())
            {
                uses.push((url_field, socket));
            }
        }
        Err(_) => {}
    }
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if URL_FILE_PARAMS.contains(&key) && !value.is_empty() {
            uses.push((url_field, percent_decode(value).into()));
        }
    }
    if let Some(ca) = tls.and_then(|t| t.ca_file.as_ref()) {
        uses.push(("tls.ca_file", base_dir.join(ca)));
    }
    uses
}

/// The file of a SQLite URL, as written (`None` for an in-memory database).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or("");
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// A URL without its password, for messages: `user:***@host`, and `password=***` (or
/// `sslpassword`) in the query string.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &base[..s + 3], &creds[..c], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _))
                    if ["password", "sslpassword", "pass", "pwd"]
                        .contains(&key.to_ascii_lowercase().as_str()) =>
                {
                    format!("{key}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_by_scheme_and_quoting() {
        assert_eq!(
            Dialect::of_url("postgresql://x/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(Dialect::of_url("mariadb://x/db").unwrap(), Dialect::MySql);
        assert_eq!(Dialect::of_url("sqlite://a.db").unwrap(), Dialect::Sqlite);
        assert!(Dialect::of_url("oracle://x").is_err());
        assert_eq!(Dialect::MySql.quote_path("s.t`x"), "`s`.`t``x`");
        assert_eq!(Dialect::Postgres.quote_path("s.t"), "\"s\".\"t\"");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn database_identity_names_the_database_not_the_credentials() {
        let base = Path::new("/");
        assert_eq!(
            database_identity("postgres://u:secret@db.example:5432/app", base).as_deref(),
            database_identity("postgresql://other@db.example/app?sslmode=require", base).as_deref(),
        );
        let pg = database_identity("postgres://u:secret@db.example/app", base).unwrap();
        assert_eq!(pg, "postgres://db.example:5432/app");
        assert_eq!(
            database_identity("mariadb://root:pw@h/test", base).as_deref(),
            Some("mysql://h:3306/test")
        );
        let dir = tempfile::tempdir().unwrap();
        let a = database_identity("sqlite://./iot.db", dir.path()).unwrap();
        let b = database_identity(
            &format!("sqlite://{}", dir.path().join("iot.db").display()),
            Path::new("/elsewhere"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(database_identity("sqlite::memory:", base), None);
        assert_eq!(table_identity("mysql://h/test", "t"), "test.t");
        assert_eq!(table_identity("mysql://h/test", "other.t"), "other.t");
        assert_eq!(table_identity("postgres://h/test", "t"), "t");
    }
}
