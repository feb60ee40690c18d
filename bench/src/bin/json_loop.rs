//! Baseline for the file → file benchmarks: the hand-written loop a user would write instead of
//! running Sluice. Reads JSON lines, parses each with serde_json, optionally applies the same edit
//! as the `add-field` plugin, serializes it and writes it, then fsyncs once at the end.
//!
//! `json_loop IN OUT [--add-field]`

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: json_loop IN OUT [--add-field]".into());
    }
    let add_field = args.iter().any(|a| a == "--add-field");
    let input = BufReader::with_capacity(1 << 20, File::open(&args[1])?);
    let out_file = File::create(&args[2])?;
    let mut out = BufWriter::with_capacity(1 << 20, &out_file);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let mut n = 0u64;
    for line in input.lines() {
        let line = line?;
        let mut value: serde_json::Value = serde_json::from_str(&line)?;
        if add_field && let Some(obj) = value.as_object_mut() {
            obj.insert("pipeline".into(), serde_json::Value::from("sluice"));
            obj.insert("processed_at".into(), serde_json::Value::from(now));
        }
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    drop(out);
    out_file.sync_all()?;
    eprintln!("json-loop: {n} records");
    Ok(())
}
