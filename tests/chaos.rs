#![cfg(all(
    feature = "file",
    feature = "sql",
    feature = "kafka",
    feature = "s3",
    feature = "opensearch"
))]
//! The chaos table: every delivery pair available here under random `kill -9`s, a sink outage,
//! a slow sink, a locked SQLite database and a Kafka broker restart, each record counted at the
//! destination by its unique `seq` (see `chaos_support`). Fails when a record is lost, or
//! delivered twice where the pair promises once.
//!
//! CI runs it small (3 kills, 4 s faults). `scripts/chaos.sh --kills 50` is the full run
//! (`SLUICE_CHAOS_KILLS`, `SLUICE_CHAOS_PAIRS`, `SLUICE_CHAOS_OUTAGE_SECS`,
//! `SLUICE_CHAOS_LATENCY_MS`, `SLUICE_CHAOS_REPORT`). Needs `scripts/services.sh up`.

mod chaos_support;
mod common;
mod kafka_support;
mod opensearch_support;
mod s3_support;

use chaos_support::{Harness, Settings, pairs, run_pair, table};

#[test]
fn every_pair_under_kills_and_faults_loses_nothing_and_duplicates_nothing_it_promises_once() {
    let settings = Settings::from_env();
    let mut selected = pairs::all();
    if !settings.pairs.is_empty() {
        let known: Vec<&str> = selected.iter().map(|p| p.name()).collect();
        for name in &settings.pairs {
            assert!(
                known.contains(&name.as_str()),
                "unknown pair {name:?} (known: {known:?})"
            );
        }
        selected.retain(|p| settings.pairs.iter().any(|n| n == p.name()));
    }
    let harness = Harness::new(settings.clone());
    let mut rows = Vec::new();
    for pair in &mut selected {
        let row = run_pair(&harness, pair.as_mut());
        println!(
            "{}",
            table(std::slice::from_ref(&row))
                .lines()
                .nth(2)
                .unwrap_or("")
        );
        rows.push(row);
    }
    let report = table(&rows);
    println!("\n{report}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &report).unwrap();
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| {
            format!(
                "{}: {} lost, {} duplicated{}",
                r.pair,
                r.lost,
                r.duplicated,
                r.error
                    .as_ref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.kills < settings.kills)
        .map(|r| format!("{}: {} of {} kills landed", r.pair, r.kills, settings.kills))
        .collect();
    assert!(
        short.is_empty(),
        "jobs too short for the kills asked: {}",
        short.join("; ")
    );
}
