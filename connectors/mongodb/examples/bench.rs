//! The datagen → MongoDB benchmark (`bench/mongodb/run.sh`), one mode per run, all on the same
//! server with the same records (`datagen`, seed 42, the source's defaults):
//!
//! ```text
//! bench URL DATABASE COLLECTION RECORDS MODE
//!     MODE = loop: a plain `mongodb` crate loop, `insert_many` of 10,000 documents at a time
//!                  (each record's JSON mapped to BSON like the sink does), every result checked;
//!            alo:  Sluice's pipeline (the core runtime, the datagen source, the mongodb sink in
//!                  insert mode, batches of 10,000), at-least-once: one unordered insert_many
//!                  each;
//!            eos:  the same, exactly-once: one transaction per batch with the checkpoint.
//!     Prints `seconds=S records=N rate=R`.
//! ```
//!
//! The pipeline runs in process (no `sluice` binary: a release build of this crate's
//! dependencies is enough), through the job loader like `sluice run`.

use std::time::Instant;

use mongodb::bson::Document;
use sluice_core::job::load_job_str;
use sluice_core::{BuildContext, Guarantee, Pipeline, Registry};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 10_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: bench URL DATABASE COLLECTION RECORDS loop|alo|eos");
        std::process::exit(2);
    }
    let (url, db, coll, mode) = (&args[1], &args[2], &args[3], args[5].as_str());
    let records: u64 = args[4].parse().expect("RECORDS");
    let mut registry = Registry::new();
    sluice_connector_file::register(&mut registry);
    sluice_connector_mongodb::register(&mut registry);
    let started = Instant::now();
    let done = match mode {
        "loop" => plain_loop(&registry, url, db, coll, records).await,
        "alo" | "eos" => {
            let guarantee = if mode == "eos" {
                "exactly-once"
            } else {
                "at-least-once"
            };
            let job = format!(
                r#"
api_version = 1
name = "bench-{coll}"
[delivery]
guarantee = "{guarantee}"
[source]
type = "datagen"
count = {records}
batch_size = {BATCH}
[[sinks]]
type = "mongodb"
url = "{url}"
database = "{db}"
collection = "{coll}"
batch = {{ max_records = {BATCH}, max_bytes = "64MiB", max_wait = "1s" }}
"#
            );
            let state = std::env::temp_dir().join(format!("sluice-bench-{coll}"));
            let loaded = load_job_str(&job, "bench.toml", &state, Some(&state), &registry)
                .unwrap_or_else(|e| panic!("{e}"));
            let report = Pipeline::new(loaded, Vec::new())
                .run(CancellationToken::new())
                .await
                .unwrap_or_else(|e| panic!("the job failed: {e}"));
            let _ = std::fs::remove_dir_all(&state);
            report.records_in
        }
        other => panic!("unknown mode {other}"),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seconds={secs:.3} records={done} rate={:.0}",
        done as f64 / secs
    );
}

async fn plain_loop(registry: &Registry, url: &str, db: &str, coll: &str, records: u64) -> u64 {
    let table: toml::Table =
        toml::from_str(&format!("count = {records}\nbatch_size = {BATCH}")).unwrap();
    let ctx = BuildContext::new("bench", ".", ".", Guarantee::AtLeastOnce);
    let mut source = match registry.source("datagen").unwrap().build(table, &ctx) {
        Ok(s) => s,
        Err(e) => panic!("{}", e.message),
    };
    source.open(None).await.unwrap();
    let client = mongodb::Client::with_uri_str(url).await.unwrap();
    let collection = client.database(db).collection::<Document>(coll);
    let mut done = 0u64;
    while let Some(batch) = source.next_batch().await.unwrap() {
        let docs: Vec<Document> = batch
            .records
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
                sluice_connector_mongodb::bson_map::document(&v, &[]).unwrap()
            })
            .collect();
        let n = docs.len();
        let result = collection.insert_many(docs).ordered(false).await.unwrap();
        assert_eq!(result.inserted_ids.len(), n, "every document inserted");
        done += n as u64;
    }
    done
}
