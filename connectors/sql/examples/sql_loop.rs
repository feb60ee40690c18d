//! Baseline for the SQL sink benchmark (`bench/sql/run.sh`): the plain sqlx loop a user would
//! write instead of running Sluice. Reads the datagen readings as JSON lines, deserializes each
//! into a struct, and writes them with multi-row `INSERT`s — `ROWS` rows per statement, one
//! transaction per `BATCH` rows — into an existing table. No offsets are kept: a crash loses or
//! repeats rows, which is what Sluice's checkpoints add.
//!
//! `sql_loop URL TABLE IN.jsonl BATCH ROWS`

use std::io::BufRead;

use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Pool, QueryBuilder};

/// One datagen reading, the columns the benchmark table has.
#[derive(Deserialize)]
struct Reading {
    device_id: String,
    site: String,
    line: String,
    ts: String,
    seq: i64,
    temperature_c: f64,
    vibration_mm_s: f64,
    humidity_pct: f64,
    pressure_kpa: f64,
    firmware: String,
    status: String,
}

const COLUMNS: &str = "device_id, site, line, ts, seq, temperature_c, vibration_mm_s, \
                       humidity_pct, pressure_kpa, firmware, status";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Writes every reading of `input` through `$pool` (a `Pool<$db>`); `$ts_cast` wraps the
/// timestamp's placeholder (`CAST(? AS TIMESTAMPTZ)` on PostgreSQL, where text does not convert
/// implicitly). A macro rather than a generic function: sqlx's executor bounds do not compose
/// with a query builder borrowed across an `.await`.
macro_rules! load {
    ($db:ty, $pool:expr, $table:expr, $input:expr, $batch:expr, $rows:expr, $ts_cast:expr) => {{
        let (pool, table, batch, rows, ts_cast): (&Pool<$db>, &str, usize, usize, Option<&str>) =
            ($pool, $table, $batch, $rows, $ts_cast);
        let mut lines = $input.lines();
        let mut total = 0u64;
        let mut pending: Vec<Reading> = Vec::with_capacity(batch);
        loop {
            pending.clear();
            for line in lines.by_ref().take(batch) {
                pending.push(serde_json::from_str(&line?)?);
            }
            if pending.is_empty() {
                break total;
            }
            let mut tx = pool.begin().await?;
            for chunk in pending.chunks(rows) {
                let mut q = QueryBuilder::<$db>::new(format!("INSERT INTO {table} ({COLUMNS}) "));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.device_id.as_str())
                        .push_bind(r.site.as_str())
                        .push_bind(r.line.as_str());
                    match ts_cast {
                        Some(ty) => {
                            b.push("CAST(")
                                .push_bind_unseparated(r.ts.as_str())
                                .push_unseparated(format!(" AS {ty})"));
                        }
                        None => {
                            b.push_bind(r.ts.as_str());
                        }
                    }
                    b.push_bind(r.seq)
                        .push_bind(r.temperature_c)
                        .push_bind(r.vibration_mm_s)
                        .push_bind(r.humidity_pct)
                        .push_bind(r.pressure_kpa)
                        .push_bind(r.firmware.as_str())
                        .push_bind(r.status.as_str());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            total += pending.len() as u64;
        }
    }};
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, table, input, batch, rows] = args.as_slice() else {
        return Err("usage: sql_loop URL TABLE IN.jsonl BATCH ROWS".into());
    };
    let (batch, rows): (usize, usize) = (batch.parse()?, rows.parse()?);
    let input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(input)?);
    let n = match url.split(':').next() {
        Some("postgres" | "postgresql") => {
            let pool = Pool::<sqlx::Postgres>::connect(url).await?;
            load!(
                sqlx::Postgres,
                &pool,
                table,
                input,
                batch,
                rows,
                Some("TIMESTAMPTZ")
            )
        }
        Some("mysql" | "mariadb") => {
            let pool = Pool::<sqlx::MySql>::connect(url).await?;
            load!(sqlx::MySql, &pool, table, input, batch, rows, None)
        }
        Some("sqlite") => {
            // The durability Sluice's SQLite sink uses: WAL, fsync at every commit.
            let opts = url
                .parse::<SqliteConnectOptions>()?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
            let pool = Pool::<sqlx::Sqlite>::connect_with(opts).await?;
            load!(sqlx::Sqlite, &pool, table, input, batch, rows, None)
        }
        _ => return Err(format!("unknown database in {url}").into()),
    };
    eprintln!("sql-loop: {n} rows");
    Ok(())
}
