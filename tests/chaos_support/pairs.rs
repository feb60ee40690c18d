//! The delivery pairs of the chaos run. Sizes grow with the number of kills (each run moves a
//! little before it is killed) and with the outage (the last run must still be writing when the
//! faults come); sources that can be paced (datagen) are, so a run lasts about
//! `kills × 0.5 s + 2 × outage + 8 s`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_connector_sql::db::{Db, Dialect};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use super::proxy::{Mode, Proxy, split_authority, through};
use super::tansu::Tansu;
use super::{Fault, Harness, Pair, Settings, Tally};
use crate::common::{generate_input, seq_counts, write_job};

/// Every pair, in table order.
pub fn all() -> Vec<Box<dyn Pair>> {
    vec![
        Box::new(FileToFile {
            exactly_once: false,
            out: PathBuf::new(),
            records: 0,
        }),
        Box::new(FileToFile {
            exactly_once: true,
            out: PathBuf::new(),
            records: 0,
        }),
        Box::new(DatagenToSql::new(Target::Postgres)),
        Box::new(DatagenToSql::new(Target::MySql)),
        Box::new(DatagenToSql::new(Target::Sqlite)),
        Box::new(KafkaToPostgres::default()),
        Box::new(FileToS3::default()),
        Box::new(DatagenToOpenSearch::default()),
    ]
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/services.sh up and source target/services.env")
    })
}

fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}_{}_{n:08x}", std::process::id())
}

/// Seconds a paced job should last.
fn paced_secs(s: &Settings) -> f64 {
    f64::from(s.kills) * 0.5 + 2.0 * s.outage.as_secs_f64() + 8.0
}

/// A proxy fault on `proxy`.
fn proxy_fault(h: &Harness, proxy: &Proxy, fault: Fault, on: bool) {
    proxy.set(match (fault, on) {
        (Fault::Outage, true) => Mode::Down,
        (Fault::Slow, true) => Mode::Slow(h.settings.latency),
        _ => Mode::Up,
    });
}

// ---------------------------------------------------------------------------------------------

/// file → file, at-least-once or exactly-once.
pub struct FileToFile {
    exactly_once: bool,
    out: PathBuf,
    records: u64,
}

impl Pair for FileToFile {
    fn name(&self) -> &'static str {
        if self.exactly_once {
            "file-eos"
        } else {
            "file-alo"
        }
    }
    fn guarantee(&self) -> &'static str {
        if self.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        }
    }
    fn strict(&self) -> bool {
        self.exactly_once
    }
    fn faults(&self) -> Vec<Fault> {
        Vec::new()
    }
    fn records(&self) -> u64 {
        self.records
    }
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf {
        // Long enough that every kill lands before the input runs out, also on a fast machine
        // (at 60,000 records, 3 kills: the at-least-once job once finished after 2).
        self.records = (60_000 * u64::from(h.settings.kills)).max(100_000);
        generate_input(dir, "in.jsonl", self.records);
        self.out = dir.join("out/out.jsonl");
        write_job(
            dir,
            "job.toml",
            &format!(
                r#"api_version = 1
name = "chaos-{}"
[delivery]
guarantee = "{}"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl"
rotate_bytes = "8MiB"
batch = {{ max_records = 100, max_wait = "20ms" }}
"#,
                self.name(),
                self.guarantee()
            ),
        )
    }
    fn progress(&mut self, _: &Harness) -> u64 {
        let dir = self.out.parent().unwrap();
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
    fn fault(&mut self, _: &Harness, _: Fault, _: bool) {}
    fn tally(&mut self, _: &Harness) -> Tally {
        let (counts, bad) = seq_counts(&self.out);
        assert!(
            bad.is_empty(),
            "corrupt lines in the sink: {:?}",
            &bad[..bad.len().min(3)]
        );
        Tally::of(&counts, self.records)
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Postgres,
    MySql,
    Sqlite,
}

/// Counting over a SQL table by `seq`.
async fn sql_tally(db: &Db, table: &str, records: u64) -> Tally {
    let d = db.dialect();
    let t = |e: &str| match d {
        Dialect::Postgres => format!("({e})::text"),
        Dialect::MySql => format!("CAST({e} AS CHAR)"),
        Dialect::Sqlite => format!("CAST({e} AS TEXT)"),
    };
    let sql = format!(
        "SELECT {}, {} FROM {}",
        t(&format!(
            "COUNT(DISTINCT CASE WHEN seq >= 0 AND seq < {records} THEN seq END)"
        )),
        t("COUNT(*)"),
        d.quote(table)
    );
    let rows = db.fetch_text(&sql, &[]).await.unwrap_or_default();
    let n = |i: usize| -> u64 {
        rows.first()
            .and_then(|r| r[i].as_deref())
            .map_or(0, |v| v.parse().unwrap())
    };
    Tally {
        distinct: n(0),
        found: n(1),
    }
}

async fn sql_count(db: &Db, table: &str) -> u64 {
    let d = db.dialect();
    let cast = match d {
        Dialect::Postgres => "(COUNT(*))::text",
        Dialect::MySql => "CAST(COUNT(*) AS CHAR)",
        Dialect::Sqlite => "CAST(COUNT(*) AS TEXT)",
    };
    db.fetch_text(&format!("SELECT {cast} FROM {}", d.quote(table)), &[])
        .await
        .ok()
        .and_then(|r| r.first().and_then(|r| r[0].clone()))
        .map_or(0, |v| v.parse().unwrap())
}

/// datagen → PostgreSQL / MariaDB (through a proxy) / SQLite, exactly-once.
pub struct DatagenToSql {
    target: Target,
    table: String,
    records: u64,
    /// The database, reached directly (not through the proxy) for counting.
    db: Option<Db>,
    proxy: Option<Proxy>,
    dir: PathBuf,
    lock: Option<SqliteConnection>,
}

impl DatagenToSql {
    fn new(target: Target) -> Self {
        DatagenToSql {
            target,
            table: String::new(),
            records: 0,
            db: None,
            proxy: None,
            dir: PathBuf::new(),
            lock: None,
        }
    }

    fn direct_url(&self) -> String {
        match self.target {
            Target::Postgres => env("SLUICE_TEST_POSTGRES_URL"),
            Target::MySql => env("SLUICE_TEST_MYSQL_URL"),
            Target::Sqlite => "sqlite://out.db".into(),
        }
    }
}

impl Pair for DatagenToSql {
    fn name(&self) -> &'static str {
        match self.target {
            Target::Postgres => "datagen-postgres",
            Target::MySql => "datagen-mariadb",
            Target::Sqlite => "datagen-sqlite",
        }
    }
    fn guarantee(&self) -> &'static str {
        "exactly-once"
    }
    fn strict(&self) -> bool {
        true
    }
    fn faults(&self) -> Vec<Fault> {
        match self.target {
            Target::Sqlite => vec![Fault::Lock],
            _ => vec![Fault::Outage, Fault::Slow],
        }
    }
    fn records(&self) -> u64 {
        self.records
    }
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf {
        let secs = paced_secs(&h.settings);
        let rate = 1000.0;
        self.records = (rate * secs) as u64;
        self.table = unique("chaos");
        self.dir = dir.to_path_buf();
        let direct = self.direct_url();
        let url = if self.target == Target::Sqlite {
            direct.clone()
        } else {
            let (_, upstream, _) = split_authority(&direct);
            let proxy = Proxy::start(&h.rt, upstream);
            let url = through(&direct, &proxy);
            self.proxy = Some(proxy);
            url
        };
        let text_t = if self.target == Target::MySql {
            "VARCHAR(40)"
        } else {
            "TEXT"
        };
        let job = write_job(
            dir,
            "job.toml",
            &format!(
                r#"api_version = 1
name = "{table}"
[delivery]
guarantee = "exactly-once"
commit_interval = "100ms"
[source]
type = "datagen"
count = {records}
rate = {rate}
batch_size = 100
[[sinks]]
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "{text_t}" }},
  {{ name = "ts", type = "{text_t}" }},
  {{ name = "temperature_c", type = "DOUBLE PRECISION" }},
]
batch = {{ max_records = 200, max_wait = "50ms" }}
retry = {{ max_backoff = "2s" }}
"#,
                table = self.table,
                records = self.records,
            ),
        );
        self.db = Some(h.rt.block_on(Db::connect(&direct, None, dir, 1)).unwrap());
        job
    }
    fn progress(&mut self, h: &Harness) -> u64 {
        let db = self.db.as_ref().unwrap();
        h.rt.block_on(sql_count(db, &self.table))
    }
    fn fault(&mut self, h: &Harness, fault: Fault, on: bool) {
        if fault != Fault::Lock {
            return proxy_fault(h, self.proxy.as_ref().unwrap(), fault, on);
        }
        let path = self.dir.join("out.db");
        if on {
            self.lock = Some(h.rt.block_on(async {
                let url = format!("sqlite://{}?mode=rw", path.display());
                let mut conn = SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("PRAGMA busy_timeout = 30000")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn
            }));
        } else if let Some(mut conn) = self.lock.take() {
            h.rt.block_on(async {
                sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            });
        }
    }
    fn tally(&mut self, h: &Harness) -> Tally {
        h.rt.block_on(sql_tally(
            self.db.as_ref().unwrap(),
            &self.table,
            self.records,
        ))
    }
    fn cleanup(&mut self, h: &Harness) {
        if let Some(db) = self.db.take() {
            h.rt.block_on(async {
                let _ = db
                    .exec(
                        &format!("DROP TABLE {}", db.dialect().quote(&self.table)),
                        &[],
                    )
                    .await;
                db.close().await;
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Kafka (our own broker) → PostgreSQL (through a proxy), exactly-once.
#[derive(Default)]
pub struct KafkaToPostgres {
    records: u64,
    table: String,
    db: Option<Db>,
    proxy: Option<Proxy>,
    tansu: Option<Tansu>,
    bucket: String,
}

impl Pair for KafkaToPostgres {
    fn name(&self) -> &'static str {
        "kafka-postgres"
    }
    fn guarantee(&self) -> &'static str {
        "exactly-once"
    }
    fn strict(&self) -> bool {
        true
    }
    fn faults(&self) -> Vec<Fault> {
        vec![Fault::Outage, Fault::Slow, Fault::BrokerRestart]
    }
    fn records(&self) -> u64 {
        self.records
    }
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf {
        self.records = (2_000 * u64::from(h.settings.kills)).max(20_000);
        self.table = unique("chaos_kafka");
        self.bucket = unique("chaos-tansu").replace('_', "-");
        let endpoint = crate::s3_support::endpoint();
        h.rt.block_on(async {
            crate::s3_support::client()
                .await
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap()
        });
        let tansu = Tansu::start(&endpoint, &self.bucket, dir.join("tansu.log"));
        let b = tansu.brokers.clone();
        self.tansu = Some(tansu);
        let topic = unique("chaos-in");
        crate::kafka_support::create_topic(&b, &topic, 4);
        crate::kafka_support::datagen_into(dir, &b, &topic, self.records);
        let direct = env("SLUICE_TEST_POSTGRES_URL");
        let (_, upstream, _) = split_authority(&direct);
        let proxy = Proxy::start(&h.rt, upstream);
        let url = through(&direct, &proxy);
        self.proxy = Some(proxy);
        self.db = Some(h.rt.block_on(Db::connect(&direct, None, dir, 1)).unwrap());
        write_job(
            dir,
            "job.toml",
            &format!(
                r#"api_version = 1
name = "{table}"
[delivery]
guarantee = "exactly-once"
commit_interval = "100ms"
[source]
type = "kafka"
brokers = "{b}"
topics = ["{topic}"]
group = "{table}"
session_timeout = "6s"
batch_size = 200
properties = {{ "max.partition.fetch.bytes" = "32768" }}
[[sinks]]
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "TEXT" }},
  {{ name = "ts", type = "TEXT" }},
  {{ name = "temperature_c", type = "DOUBLE PRECISION" }},
]
batch = {{ max_records = 200, max_wait = "20ms" }}
retry = {{ max_backoff = "2s" }}
"#,
                table = self.table,
            ),
        )
    }
    fn progress(&mut self, h: &Harness) -> u64 {
        h.rt.block_on(sql_count(self.db.as_ref().unwrap(), &self.table))
    }
    fn done(&mut self, h: &Harness) -> Option<bool> {
        let t = h.rt.block_on(sql_tally(
            self.db.as_ref().unwrap(),
            &self.table,
            self.records,
        ));
        Some(t.distinct == self.records)
    }
    fn fault(&mut self, h: &Harness, fault: Fault, on: bool) {
        match fault {
            Fault::BrokerRestart if on => {
                let down = Duration::from_secs(3);
                self.tansu
                    .as_mut()
                    .unwrap()
                    .restart(&crate::s3_support::endpoint(), down);
            }
            Fault::BrokerRestart => {}
            _ => proxy_fault(h, self.proxy.as_ref().unwrap(), fault, on),
        }
    }
    fn tally(&mut self, h: &Harness) -> Tally {
        h.rt.block_on(sql_tally(
            self.db.as_ref().unwrap(),
            &self.table,
            self.records,
        ))
    }
    fn cleanup(&mut self, h: &Harness) {
        if let Some(mut t) = self.tansu.take() {
            t.stop();
        }
        if let Some(db) = self.db.take() {
            h.rt.block_on(async {
                let _ = db
                    .exec(
                        &format!("DROP TABLE {}", db.dialect().quote(&self.table)),
                        &[],
                    )
                    .await;
                db.close().await;
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// file → S3 (the emulator, through a proxy), Parquet, exactly-once.
#[derive(Default)]
pub struct FileToS3 {
    records: u64,
    bucket: String,
    proxy: Option<Proxy>,
}

impl Pair for FileToS3 {
    fn name(&self) -> &'static str {
        "file-s3-parquet"
    }
    fn guarantee(&self) -> &'static str {
        "exactly-once"
    }
    fn strict(&self) -> bool {
        true
    }
    fn faults(&self) -> Vec<Fault> {
        vec![Fault::Outage, Fault::Slow]
    }
    fn records(&self) -> u64 {
        self.records
    }
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf {
        self.records = (1_000 * u64::from(h.settings.kills)).max(20_000);
        self.bucket = unique("chaos-s3").replace('_', "-");
        h.rt.block_on(async {
            crate::s3_support::client()
                .await
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap()
        });
        generate_input(dir, "in.jsonl", self.records);
        let direct = crate::s3_support::endpoint();
        let (_, upstream, _) = split_authority(&direct);
        let proxy = Proxy::start(&h.rt, upstream);
        let endpoint = through(&direct, &proxy);
        self.proxy = Some(proxy);
        write_job(
            dir,
            "job.toml",
            &format!(
                r#"api_version = 1
name = "{bucket}"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "us-east-1"
force_path_style = true
prefix = "readings/"
format = "parquet"
compression = "zstd"
batch = {{ max_records = 200, max_wait = "20ms" }}
retry = {{ max_backoff = "2s" }}
"#,
                bucket = self.bucket,
            ),
        )
    }
    fn progress(&mut self, h: &Harness) -> u64 {
        h.rt.block_on(async {
            let c = crate::s3_support::client().await;
            let mut n = 0;
            let mut token = None;
            loop {
                let Ok(page) = c
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .set_continuation_token(token)
                    .send()
                    .await
                else {
                    return n;
                };
                n += page.contents().len() as u64;
                match page.next_continuation_token() {
                    Some(t) => token = Some(t.to_string()),
                    None => return n,
                }
            }
        })
    }
    fn fault(&mut self, h: &Harness, fault: Fault, on: bool) {
        proxy_fault(h, self.proxy.as_ref().unwrap(), fault, on);
    }
    fn tally(&mut self, h: &Harness) -> Tally {
        let objects = h.rt.block_on(crate::s3_support::objects(&self.bucket));
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        for (_, body) in &objects {
            for seq in crate::s3_support::seqs_of_parquet(body) {
                *counts.entry(seq).or_insert(0) += 1;
            }
        }
        Tally::of(&counts, self.records)
    }
}

// ---------------------------------------------------------------------------------------------

/// datagen → OpenSearch (through a proxy): at-least-once with document ids derived from the
/// source position, so a replay overwrites: one document per record is expected.
#[derive(Default)]
pub struct DatagenToOpenSearch {
    records: u64,
    index: String,
    proxy: Option<Proxy>,
}

impl Pair for DatagenToOpenSearch {
    fn name(&self) -> &'static str {
        "datagen-opensearch"
    }
    fn guarantee(&self) -> &'static str {
        "at-least-once, idempotent ids"
    }
    fn strict(&self) -> bool {
        true
    }
    fn faults(&self) -> Vec<Fault> {
        vec![Fault::Outage, Fault::Slow]
    }
    fn records(&self) -> u64 {
        self.records
    }
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf {
        // `_search` reads at most 10,000 documents in one page.
        self.records = 10_000;
        let rate = (self.records as f64 / paced_secs(&h.settings)).max(1.0);
        self.index = unique("chaos").to_lowercase();
        let direct = crate::opensearch_support::opensearch_url();
        let (_, upstream, _) = split_authority(&direct);
        let proxy = Proxy::start(&h.rt, upstream);
        let url = through(&direct, &proxy);
        self.proxy = Some(proxy);
        write_job(
            dir,
            "job.toml",
            &format!(
                r#"api_version = 1
name = "{index}"
[delivery]
guarantee = "at-least-once"
commit_interval = "100ms"
[source]
type = "datagen"
count = {records}
rate = {rate:.1}
batch_size = 50
[[sinks]]
type = "opensearch"
url = "{url}"
index = "{index}"
batch = {{ max_records = 200, max_wait = "50ms" }}
retry = {{ max_backoff = "2s" }}
"#,
                index = self.index,
                records = self.records,
            ),
        )
    }
    fn progress(&mut self, h: &Harness) -> u64 {
        let base = crate::opensearch_support::opensearch_url();
        h.rt.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("{base}/{}/_count", self.index))
                .send()
                .await;
            match r {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["count"].as_u64())
                    .unwrap_or(0),
                Err(_) => 0,
            }
        })
    }
    fn fault(&mut self, h: &Harness, fault: Fault, on: bool) {
        proxy_fault(h, self.proxy.as_ref().unwrap(), fault, on);
    }
    fn tally(&mut self, h: &Harness) -> Tally {
        let base = crate::opensearch_support::opensearch_url();
        let (counts, _) =
            h.rt.block_on(crate::opensearch_support::seq_counts(&base, &self.index));
        Tally::of(&counts, self.records)
    }
    fn cleanup(&mut self, h: &Harness) {
        let base = crate::opensearch_support::opensearch_url();
        h.rt.block_on(async {
            let _ = reqwest::Client::new()
                .delete(format!("{base}/{}", self.index))
                .send()
                .await;
        });
    }
}
