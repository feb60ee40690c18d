//! Per-record overhead of the WebAssembly boundary: the `noop` plugin at batch sizes 1, 64 and
//! 512 (medians, ns/record), plus `add-field` against a native loop doing the same edit.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p sluice-transforms --bench noop_overhead`
//! (append `-- keep` to measure only the rows whose name contains `keep`).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sluice_core::record::{Position, Record};
use sluice_core::transform::{Transform, TransformLimits, TransformSpec};

const RECORD: &str = r#"{"device_id":"dev-0042","site":"plant-3","line":"L2","ts":"2026-11-25T10:00:00.000Z","seq":42,"temperature_c":71.3,"vibration_mm_s":2.41,"humidity_pct":40.2,"pressure_kpa":101.2,"firmware":"1.4.2","status":"ok"}"#;

/// Records per timed sample, and samples per measurement.
const PER_SAMPLE: usize = 32 * 1024;
const SAMPLES: usize = 15;

fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    if !path.is_file() {
        eprintln!(
            "{} is missing: run scripts/build-plugins.sh first",
            path.display()
        );
        std::process::exit(1);
    }
    path
}

fn load(name: &str, with: serde_json::Value) -> Box<dyn Transform> {
    load_with_fuel(name, with, 0)
}

/// Load with fuel metering when `fuel` > 0.
fn load_with_fuel(name: &str, with: serde_json::Value, fuel: u64) -> Box<dyn Transform> {
    let spec = TransformSpec {
        plugin: plugin(name),
        name: None,
        with,
        limits: TransformLimits {
            fuel,
            ..TransformLimits::default()
        },
    };
    match sluice_transforms::load_transform(&spec, std::path::Path::new("/")) {
        Ok(t) => Box::new(t),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

fn batch(size: usize) -> Vec<Record> {
    let partition: Arc<str> = Arc::from("bench");
    (0..size)
        .map(|i| Record::new(RECORD, Position::int(partition.clone(), i as i64)))
        .collect()
}

/// Median and minimum ns/record of running `f` over batches of `size`.
fn measure(size: usize, mut f: impl FnMut(&[Record])) -> (f64, f64) {
    let records = batch(size);
    let calls = PER_SAMPLE.div_ceil(size);
    for _ in 0..calls {
        f(&records);
    }
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                f(&records);
            }
            started.elapsed().as_nanos() as f64 / (calls * size) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[SAMPLES / 2], samples[0])
}

fn run_plugin(t: &mut dyn Transform, records: &[Record]) {
    match t.process(records) {
        Ok(out) => {
            black_box(out);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// The same edit as the `add-field` bench config, written by hand with serde_json.
fn native_add_field(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut doc: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&r.value).unwrap_or_default();
            doc.insert("pipeline".into(), "sluice".into());
            let mut out = r.clone();
            out.value = serde_json::to_vec(&doc).unwrap_or_default().into();
            out
        })
        .collect()
}

/// One measured thing: runs a batch.
type Row = Box<dyn FnMut(&[Record])>;

fn main() {
    // `cargo bench -- WORD` measures only the rows whose name contains WORD.
    // `SLUICE_BENCH_ONLY_512=1` skips the small batch sizes (for profiling).
    let only_512 = std::env::var_os("SLUICE_BENCH_ONLY_512").is_some();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!(
        "record: {} bytes of JSON; median of {SAMPLES} samples of {PER_SAMPLE} records",
        RECORD.len()
    );
    println!(
        "{:<34} {:>16} {:>16} {:>16}",
        "ns/record (median/min) at batch", 1, 64, 512
    );
    let mut rows: Vec<(&str, Row)> = Vec::new();
    let mut keep = load("noop", json!({}));
    rows.push((
        "noop (keep: answers unchanged)",
        Box::new(move |r| run_plugin(keep.as_mut(), r)),
    ));
    let mut copy = load("noop", json!({"mode": "copy"}));
    rows.push((
        "noop (copy: re-emits the record)",
        Box::new(move |r| run_plugin(copy.as_mut(), r)),
    ));
    let mut add = load("add-field", json!({"set": {"pipeline": "sluice"}}));
    rows.push((
        "add-field (wasm)",
        Box::new(move |r| run_plugin(add.as_mut(), r)),
    ));
    let mut fueled = load_with_fuel(
        "add-field",
        json!({"set": {"pipeline": "sluice"}}),
        u64::MAX / 2,
    );
    rows.push((
        "add-field (wasm, fuel metered)",
        Box::new(move |r| run_plugin(fueled.as_mut(), r)),
    ));
    rows.push((
        "add-field (native serde_json loop)",
        Box::new(|r| {
            black_box(native_add_field(r));
        }),
    ));
    for (name, f) in rows.iter_mut() {
        if !filter.is_empty() && !filter.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let cells = [1, 64, 512].map(|size| {
            if only_512 && size != 512 {
                return "-".to_string();
            }
            let (median, min) = measure(size, &mut *f);
            format!("{median:.1}/{min:.1}")
        });
        println!(
            "{name:<34} {:>16} {:>16} {:>16}",
            cells[0], cells[1], cells[2]
        );
    }
}
