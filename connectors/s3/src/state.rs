//! Exactly-once for the S3 sink: a small checkpoint object per job and sink in the bucket,
//! `<fixed start of prefix>_sluice/<job>/<sink>.json`, says which source positions the
//! archive holds, and which data objects a write in progress may have left behind.
//!
//! S3 has no transaction over several objects, but a PUT replaces an object whole (a reader
//! sees the old or the new body, never a mix), and so does the completion of a multipart
//! upload. The protocol of one write, with `committed` the stored checkpoint and `next` the
//! checkpoint after the write's records:
//!
//! 1. Every data object's key is derived from `(committed, next)` (see [`range_id`]): the same
//!    range written again gets the same keys and overwrites instead of adding.
//! 2. Store `{checkpoint: committed, pending: keys}`: the keys this write is about to make.
//! 3. Upload the data objects (one per rendered prefix).
//! 4. Store `{checkpoint: next, pending: []}`: the commit point.
//!
//! A restart reads the object. `pending` not empty means a write stopped between 2 and 4: its
//! objects (some, all or none of them made) hold records after `checkpoint` that the source
//! will deliver again, maybe cut into different writes (batching by time is not
//! deterministic), so they are deleted before anything is written, and `pending` cleared. The
//! source resumes strictly after `checkpoint`. Each record is then in exactly one committed
//! data object: nothing lost, nothing twice.
//!
//! With `buffering`, records are held per partition (rendered prefix) across writes, and a
//! partition becomes an object when it reaches a bound. The protocol stays the same, with
//! three changes:
//!
//! - a partition's object is named from `(since, next)`: `since` is the checkpoint before the
//!   write that brought its first held record;
//! - the stored `checkpoint` is the earliest `since` of the partitions still held (or `next`
//!   when none is): resuming there replays every held record, which died with the process;
//! - `flushed` maps each partition written since that checkpoint to the `next` of its last
//!   object. A partition's buffer takes all of its records in order, so an object covers every
//!   record of its partition up to its `next`: a replayed record whose partition's entry covers
//!   its position is already archived and skipped. Entries the checkpoint has passed are
//!   dropped.
//!
//! This needs a record's partition to be the same on a replay, which holds for field values
//! and event time; a write placing a record by the clock flushes every partition, so no such
//! record is ever held or replayed after its commit.
//!
//! The object also names the destination (bucket and prefix template) it was written for; a
//! checkpoint object of another destination is refused instead of silently resumed from.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_core::{Checkpoint, ConnectorError};

use crate::client::Bucket;

/// What the checkpoint object holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    /// The job that owns it.
    pub job: String,
    /// The sink within the job.
    pub sink: String,
    /// `s3://bucket/prefix-template`.
    pub destination: String,
    /// Everything up to here is in committed data objects.
    pub checkpoint: Checkpoint,
    /// Keys of data objects a write after `checkpoint` may have made before it stopped.
    #[serde(default)]
    pub pending: Vec<String>,
    /// With `buffering`: rendered prefix → the checkpoint its last object covers. `checkpoint`
    /// lags behind the records still held in other partitions; a record replayed from there
    /// whose partition's entry covers its position is already in an object and is skipped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flushed: BTreeMap<String, Checkpoint>,
}

/// `<fixed>_sluice/<job>/<sink>.json`
pub fn state_key(fixed_start: &str, job: &str, sink: &str) -> String {
    // Only the folder part of the fixed start: `logs/app-` keeps the state in `logs/`.
    let folder = fixed_start.rfind('/').map_or("", |i| &fixed_start[..=i]);
    format!("{folder}_sluice/{}/{}.json", safe(job), safe(sink))
}

/// A job or sink name as one key segment.
pub fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 16 hex digits naming a write's range: the same range always gets the same id.
pub fn range_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Read the checkpoint object, `None` when there is none.
pub async fn load(bucket: &Bucket, key: &str) -> Result<Option<SinkState>, ConnectorError> {
    let Some(body) = bucket.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        ConnectorError::external(format!(
            "s3://{}/{key} is not a Sluice checkpoint object: {e}",
            bucket.name()
        ))
    })
}

/// Replace the checkpoint object.
pub async fn store(bucket: &Bucket, key: &str, state: &SinkState) -> Result<(), ConnectorError> {
    let body = serde_json::to_vec(state)
        .map_err(|e| ConnectorError::internal(format!("encoding the checkpoint object: {e}")))?;
    bucket.put(key, Bytes::from(body)).await
}

/// Finish what a stopped write left: delete its objects, then clear `pending` (in this order,
/// so a crash in between only repeats the deletes).
pub async fn recover(
    bucket: &Bucket,
    key: &str,
    state: &mut SinkState,
) -> Result<(), ConnectorError> {
    if state.pending.is_empty() {
        return Ok(());
    }
    tracing::info!(
        objects = state.pending.len(),
        bucket = bucket.name(),
        "Deleting the objects of a write that did not commit."
    );
    for k in &state.pending {
        bucket.delete(k).await?;
    }
    state.pending.clear();
    store(bucket, key, state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids() {
        assert_eq!(state_key("logs/app-", "j", "s3"), "logs/_sluice/j/s3.json");
        assert_eq!(state_key("", "my job", "a/b"), "_sluice/my_job/a_b.json");
        let a = range_id(&[b"x", b"y"]);
        assert_eq!(a.len(), 16);
        assert_eq!(a, range_id(&[b"x", b"y"]));
        assert_ne!(a, range_id(&[b"xy", b""]));
    }
}
