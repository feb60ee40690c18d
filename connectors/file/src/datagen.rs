//! `datagen`: deterministic synthetic IoT sensor readings. Record `seq` is a pure function of
//! `(seed, seq)`, so a restart at any checkpoint regenerates exactly the same records.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, Offset, Position, Record, Source,
    SourceConnector,
};
use tokio::time::Instant;

use crate::config::DatagenConfig;
use crate::timefmt::{parse_rfc3339_utc, rfc3339_millis};

/// The most value bytes in one generated batch (the file source reads 1 MiB at a time too).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Registers the datagen source.
pub struct DatagenConnector;

impl SourceConnector for DatagenConnector {
    const TYPE: &'static str = "datagen";
    const DOC: &'static str =
        "Deterministic synthetic IoT sensor readings (device, time, temperature, vibration, seq).";
    type Config = DatagenConfig;

    fn build(
        config: DatagenConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let start_ms = parse_rfc3339_utc(&config.start_time).ok_or_else(|| {
            ConnectorError::config(format!(
                "start_time {:?} is not like 2026-11-25T00:00:00Z",
                config.start_time
            ))
        })?;
        if config.devices == 0 || config.batch_size == 0 {
            return Err(ConnectorError::config(
                "devices and batch_size must be at least 1",
            ));
        }
        if config.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err(ConnectorError::config(
                "rate must be a positive number of records per second",
            ));
        }
        if !(0.0..=1.0).contains(&config.anomaly_rate) {
            return Err(ConnectorError::config(
                "anomaly_rate must be between 0 and 1",
            ));
        }
        Ok(Box::new(Datagen {
            partition: Arc::from("datagen"),
            start_ms,
            next: 0,
            first: 0,
            started: None,
            config,
        }))
    }
}

/// A running generator.
pub struct Datagen {
    config: DatagenConfig,
    partition: Arc<str>,
    start_ms: i64,
    next: u64,
    first: u64,
    started: Option<Instant>,
}

/// SplitMix64: a tiny, good-enough mixer for independent per-record randomness.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

const SITES: [&str; 4] = ["plant-1", "plant-2", "plant-3", "plant-4"];
const FIRMWARE: [&str; 3] = ["1.4.2", "1.5.0", "2.0.1"];

impl Datagen {
    /// The value of record `seq`.
    pub fn value(&self, seq: u64) -> Vec<u8> {
        let c = &self.config;
        let r = mix(c.seed ^ mix(seq));
        let r2 = mix(r);
        let device = (r % c.devices as u64) as u32;
        let anomalous = unit(r2) < c.anomaly_rate;
        let temperature = if anomalous {
            92.0 + 25.0 * unit(mix(r2))
        } else {
            55.0 + 25.0 * unit(mix(r2))
        };
        let vibration = 0.5 + 4.0 * unit(mix(r ^ 7)) + if anomalous { 6.0 } else { 0.0 };
        let humidity = 30.0 + 30.0 * unit(mix(r ^ 11));
        let pressure = 99.0 + 4.0 * unit(mix(r ^ 13));
        let ts = self.start_ms + (seq as i64).saturating_mul(c.step.0.as_millis() as i64);
        let mut out = Vec::with_capacity(240);
        let _ = write!(
            out,
            "{{\"device_id\":\"dev-{device:04}\",\"site\":\"{}\",\"line\":\"L{}\",\"ts\":\"",
            SITES[(device % 4) as usize],
            device % 7 + 1
        );
        rfc3339_millis(ts, &mut out);
        let _ = write!(
            out,
            "\",\"seq\":{seq},\"temperature_c\":{temperature:.2},\"vibration_mm_s\":{vibration:.3},\"humidity_pct\":{humidity:.1},\"pressure_kpa\":{pressure:.2},\"firmware\":\"{}\",\"status\":\"{}\"}}",
            FIRMWARE[(device % 3) as usize],
            if anomalous { "alarm" } else { "ok" }
        );
        out
    }

    fn record(&self, seq: u64) -> Record {
        let mut rec = Record::new(
            self.value(seq),
            Position::int(self.partition.clone(), seq as i64),
        );
        rec.timestamp = Some(
            self.start_ms + (seq as i64).saturating_mul(self.config.step.0.as_millis() as i64),
        );
        rec
    }
}

#[async_trait]
impl Source for Datagen {
    // A generator reaches nothing.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        if let Some(Offset::Int(done)) = resume.as_ref().and_then(|cp| cp.get("datagen")) {
            self.next = (*done + 1) as u64;
        }
        self.first = self.next;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        let end = self.config.count.unwrap_or(u64::MAX);
        if self.next >= end {
            return Ok(None);
        }
        let mut size = self.config.batch_size as u64;
        if let Some(rate) = self.config.rate {
            // Pace by the schedule, in batches of about a tenth of a second.
            size = size.min(((rate / 10.0).ceil() as u64).max(1));
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64((self.next - self.first) as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let stop = end.min(self.next.saturating_add(size));
        // A batch also ends at MAX_BATCH_BYTES of values: memory is bounded by bytes, whatever
        // `batch_size` says (a batch of a million readings would hold ~220 MB at once).
        let mut records = Vec::with_capacity((stop - self.next).min(4096) as usize);
        let mut bytes = 0;
        while self.next < stop && bytes < MAX_BATCH_BYTES {
            let record = self.record(self.next);
            bytes += record.value.len();
            records.push(record);
            self.next += 1;
        }
        Ok(Some(Batch::new(records)))
    }

    fn expected_total(&self) -> Option<u64> {
        self.config.count.map(|c| c.saturating_sub(self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Guarantee;

    fn build(count: u64) -> Box<dyn Source> {
        let cfg: DatagenConfig = toml::from_str(&format!("count = {count}")).unwrap();
        let ctx = BuildContext::new("t", ".", ".", Guarantee::AtLeastOnce);
        DatagenConnector::build(cfg, &ctx).unwrap()
    }

    #[tokio::test]
    async fn deterministic_and_resumable() {
        let mut a = build(2500);
        a.open(None).await.unwrap();
        let mut all = Vec::new();
        while let Some(b) = a.next_batch().await.unwrap() {
            all.extend(b.records);
        }
        assert_eq!(all.len(), 2500);
        let v: serde_json::Value = serde_json::from_slice(&all[1234].value).unwrap();
        assert_eq!(v["seq"], 1234);
        assert!(
            all[0].value.len() > 180 && all[0].value.len() < 260,
            "{}",
            all[0].value.len()
        );
        let mut cp = Checkpoint::default();
        cp.advance(&all[1233].position);
        let mut b = build(2500);
        b.open(Some(cp)).await.unwrap();
        let first = b.next_batch().await.unwrap().unwrap();
        assert_eq!(first.records[0], all[1234]);
    }

    #[tokio::test]
    async fn a_huge_batch_size_still_ends_batches_at_a_mebibyte() {
        let cfg: DatagenConfig = toml::from_str("count = 50000\nbatch_size = 1000000").unwrap();
        let ctx = BuildContext::new("t", ".", ".", Guarantee::AtLeastOnce);
        let mut src = DatagenConnector::build(cfg, &ctx).unwrap();
        src.open(None).await.unwrap();
        let (mut batches, mut records, mut next) = (0, 0, 0);
        while let Some(b) = src.next_batch().await.unwrap() {
            let bytes: usize = b.records.iter().map(|r| r.value.len()).sum();
            assert!(bytes < MAX_BATCH_BYTES + 512, "{bytes} bytes in one batch");
            for r in &b.records {
                assert_eq!(r.position.offset, sluice_core::Offset::Int(next));
                next += 1;
            }
            records += b.records.len();
            batches += 1;
        }
        assert_eq!(records, 50000, "nothing skipped at batch ends");
        assert!(batches >= 10, "{batches} batches");
    }
}
