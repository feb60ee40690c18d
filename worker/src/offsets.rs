//! Reading and changing a job's positions in its offset store (`<job dir>/offsets.db`), and
//! their JSON shape: `[{ "partition": "p", "offset": 42 }]` (a string for textual offsets).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_core::offset_store::OffsetStore;
use sluice_core::record::{Checkpoint, Offset};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};

use super::model::JobDef;
use super::supervisor::Ctx;

/// One partition's position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartitionOffset {
    /// Source partition.
    #[schema(min_length = 1)]
    pub partition: String,
    /// A number for integer offsets, a string for textual ones.
    #[schema(schema_with = offset_schema)]
    pub offset: serde_json::Value,
}

/// An [`Offset`]: a 64-bit integer or a string.
pub(super) fn offset_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(i64::MIN))
                .maximum(Some(i64::MAX)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
}

/// A checkpoint as JSON rows, by partition.
pub fn to_rows(cp: &Checkpoint) -> Vec<PartitionOffset> {
    cp.offsets
        .iter()
        .map(|(p, o)| PartitionOffset {
            partition: p.to_string(),
            offset: match o {
                Offset::Int(i) => serde_json::Value::from(*i),
                Offset::Text(s) => serde_json::Value::from(s.as_str()),
            },
        })
        .collect()
}

/// A JSON number that is an integer in `i64`'s range. `5.0` is one: JSON (and JSON Schema's
/// `integer`) do not tell it from `5`. A number that is read as a float is taken only up to
/// 2^53, where every integer is exact: -9223372036854775809 reads as the float -2^63, which
/// must not become `i64::MIN`.
fn integer(n: &serde_json::Number) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
    })
}

/// Parse JSON rows into offsets; the message names the bad row.
pub fn from_rows(rows: &[PartitionOffset]) -> Result<Checkpoint, String> {
    let mut cp = Checkpoint::default();
    for (i, row) in rows.iter().enumerate() {
        let offset = match &row.offset {
            serde_json::Value::Number(n) => Offset::Int(
                integer(n)
                    .ok_or_else(|| format!("offsets[{i}].offset: expected a 64-bit integer"))?,
            ),
            serde_json::Value::String(s) => Offset::Text(s.clone()),
            _ => {
                return Err(format!(
                    "offsets[{i}].offset: expected an integer or a string"
                ));
            }
        };
        if row.partition.is_empty() {
            return Err(format!("offsets[{i}].partition: must not be empty"));
        }
        cp.offsets.insert(row.partition.as_str().into(), offset);
    }
    Ok(cp)
}

fn store_path(job_dir: &Path) -> std::path::PathBuf {
    job_dir.join("offsets.db")
}

/// The job's committed checkpoint in its offset store (`None` if it never committed).
pub async fn load(job_dir: &Path, job: &str) -> anyhow::Result<Option<Checkpoint>> {
    let path = store_path(job_dir);
    if !path.exists() {
        return Ok(None);
    }
    let store = OffsetStore::open(&path).await?;
    let cp = store.load(job).await;
    store.close().await;
    Ok(cp?)
}

/// Reset a stopped job's positions everywhere a run resumes from — its offset store and, with
/// exactly-once, the checkpoints its sinks store with their data: `None` forgets them all,
/// `Some` sets those partitions. Returns the offset store's checkpoint afterwards.
pub async fn reset_job(
    ctx: &Ctx,
    def: &JobDef,
    partitions: Option<&Checkpoint>,
) -> anyhow::Result<Option<Checkpoint>> {
    let loaded = ctx.load(def)?;
    let report = sluice_core::runtime::reset_positions(loaded, partitions).await?;
    tracing::info!(job = %def.name, sinks = ?report.sinks, "Job positions reset.");
    Ok(report.offsets)
}

/// Replace the job's checkpoint (`None` deletes it: the next run starts from the beginning).
#[cfg(test)]
pub async fn reset(job_dir: &Path, job: &str, cp: Option<&Checkpoint>) -> anyhow::Result<()> {
    let path = store_path(job_dir);
    if cp.is_none() && !path.exists() {
        return Ok(());
    }
    let store = OffsetStore::open(&path).await?;
    let result = store.reset(job, cp).await;
    store.close().await;
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_through_json_rows() {
        let rows: Vec<PartitionOffset> = serde_json::from_str(
            r#"[{"partition": "a", "offset": 42}, {"partition": "b", "offset": "4960"}]"#,
        )
        .unwrap();
        let cp = from_rows(&rows).unwrap();
        assert_eq!(cp.get("a"), Some(&Offset::Int(42)));
        assert_eq!(cp.get("b"), Some(&Offset::Text("4960".into())));
        assert_eq!(to_rows(&cp), rows);
        let bad: Vec<PartitionOffset> =
            serde_json::from_str(r#"[{"partition": "a", "offset": true}]"#).unwrap();
        assert!(from_rows(&bad).unwrap_err().contains("offsets[0].offset"));
        // JSON does not tell 42.0 from 42; 42.5 and 2^64 are not 64-bit integers.
        let float: Vec<PartitionOffset> =
            serde_json::from_str(r#"[{"partition": "a", "offset": 42.0}]"#).unwrap();
        assert_eq!(from_rows(&float).unwrap().get("a"), Some(&Offset::Int(42)));
        for bad in [
            "42.5",
            "18446744073709551616",
            "-9223372036854775809",
            "1e300",
        ] {
            let rows: Vec<PartitionOffset> =
                serde_json::from_str(&format!(r#"[{{"partition": "a", "offset": {bad}}}]"#))
                    .unwrap();
            assert!(from_rows(&rows).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resets_and_loads_a_jobs_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "j").await.unwrap(), None);
        let mut cp = Checkpoint::default();
        cp.offsets.insert("p".into(), Offset::Int(7));
        reset(dir.path(), "j", Some(&cp)).await.unwrap();
        assert_eq!(load(dir.path(), "j").await.unwrap(), Some(cp));
        reset(dir.path(), "j", None).await.unwrap();
        assert_eq!(load(dir.path(), "j").await.unwrap(), None);
    }
}
