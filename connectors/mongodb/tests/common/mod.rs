//! Helpers shared by the MongoDB connector tests: the server from
//! `scripts/services/mongodb.sh` (`SLUICE_TEST_MONGODB_URL`; SecantusDB here, a real replica set
//! elsewhere) and plain driver calls to set up and read back collections.
#![allow(dead_code, missing_docs)]

use std::ops::Range;

use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::{Client, Collection};
use sluice_core::testing::test_value;

/// The database every test works in (each test in collections of its own).
pub const DB: &str = "sluice_test";

/// The server started by `scripts/services/mongodb.sh`. Missing = a failed test, never a skip.
pub fn url() -> String {
    std::env::var("SLUICE_TEST_MONGODB_URL").expect(
        "SLUICE_TEST_MONGODB_URL is not set: run `bash scripts/services.sh up mongodb` and load target/services.env first",
    )
}

/// A client of the test server.
pub async fn client() -> Client {
    Client::with_uri_str(url())
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", url()))
}

/// A collection of the test database.
pub async fn coll(name: &str) -> Collection<Document> {
    client().await.database(DB).collection(name)
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}_{}_{n:08x}", std::process::id())
}

/// Every document of a collection, in `_id` order.
pub async fn docs(name: &str) -> Vec<Document> {
    coll(name)
        .await
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// The `key` field of every document (or of its `fullDocument`), once per copy.
pub async fn keys(name: &str) -> Vec<String> {
    docs(name)
        .await
        .into_iter()
        .map(|d| {
            let inner = d.get_document("fullDocument").unwrap_or(&d);
            inner
                .get_str("key")
                .unwrap_or_else(|_| panic!("a document without a key: {d}"))
                .to_string()
        })
        .collect()
}

/// Insert generated records `seqs` (`sluice_core::testing::test_value`) into a collection.
pub async fn feed(name: &str, seqs: Range<u64>) {
    let c = coll(name).await;
    let all: Vec<u64> = seqs.collect();
    for chunk in all.chunks(1000) {
        let docs: Vec<Document> = chunk
            .iter()
            .map(|s| {
                let v: serde_json::Value = serde_json::from_str(&test_value(*s)).unwrap();
                match Bson::try_from(v).unwrap() {
                    Bson::Document(d) => d,
                    other => panic!("not a document: {other}"),
                }
            })
            .collect();
        c.insert_many(docs)
            .await
            .unwrap_or_else(|e| panic!("feeding {name}: {e}"));
    }
}

/// The server's current operation time (what `start_from = { at_operation_time }` takes).
pub async fn operation_time() -> Timestamp {
    let reply = client()
        .await
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap_or_else(|e| panic!("ping: {e}"));
    match reply.get("operationTime") {
        Some(Bson::Timestamp(t)) => *t,
        other => panic!("ping answered without an operationTime: {other:?}"),
    }
}

/// Make a collection whose validator wants `seq` to be a number.
pub async fn create_validated(name: &str) {
    client()
        .await
        .database(DB)
        .create_collection(name)
        .validator(doc! { "$jsonSchema": {
            "bsonType": "object",
            "properties": { "seq": { "bsonType": ["int", "long", "double"] } }
        } })
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
}

/// The registry with this crate's connectors and the `mem` test source.
pub fn registry() -> sluice_core::Registry {
    let mut registry = sluice_core::Registry::new();
    sluice_connector_mongodb::register(&mut registry);
    registry.register_source::<sluice_core::testing::MemSourceConnector>();
    sluice_connector_file::register(&mut registry);
    registry
}

/// Build and open a sink from TOML (job `job`, the given guarantee).
pub async fn open_sink(
    job: &str,
    src: &str,
    guarantee: sluice_core::Guarantee,
) -> Box<dyn sluice_core::Sink> {
    let table: toml::Table = toml::from_str(src).unwrap();
    let ctx = sluice_core::BuildContext::new(job, ".", ".", guarantee);
    let mut sink = match registry().sink("mongodb").unwrap().build(table, &ctx) {
        Ok(sink) => sink,
        Err(e) => panic!("{}: {}", e.path, e.message),
    };
    let sctx = sluice_core::SinkContext {
        job: job.into(),
        sink: "mongodb".into(),
        guarantee,
    };
    sink.open(&sctx)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    sink
}

/// A record with this JSON value at `test`/`n`.
pub fn record(n: i64, value: &str) -> sluice_core::Record {
    sluice_core::Record::new(
        value.to_string(),
        sluice_core::Position::int(std::sync::Arc::from("test"), n),
    )
}

/// Run a job file's text to its end (or until `stop` is cancelled).
pub async fn run_job(
    dir: &std::path::Path,
    text: &str,
    stop: tokio_util::sync::CancellationToken,
) -> sluice_core::RunReport {
    let loaded = sluice_core::job::load_job_str(
        text,
        "job.toml",
        dir,
        Some(&dir.join("state")),
        &registry(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    sluice_core::Pipeline::new(loaded, Vec::new())
        .run(stop)
        .await
        .unwrap_or_else(|e| panic!("the job failed: {e}"))
}
