//! Object bodies: JSON lines (plain, gzip, zstd) and Parquet.

use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCodec, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_core::ConnectorError;

use crate::config::{ColumnType, Compression};

/// JSON lines of `values` (each one JSON document without raw newlines), compressed.
#[cfg(test)]
pub fn json_lines<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    size_hint: usize,
    compression: Compression,
) -> Result<Vec<u8>, ConnectorError> {
    let mut plain = Vec::with_capacity(size_hint);
    for v in values {
        plain.extend_from_slice(v);
        plain.push(b'\n');
    }
    compress(&plain, compression)
}

/// A whole JSON lines object body, compressed.
pub fn compress(plain: &[u8], compression: Compression) -> Result<Vec<u8>, ConnectorError> {
    let failed = |e: std::io::Error| ConnectorError::io("compressing an object", &e);
    match compression {
        Compression::None => Ok(plain.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(plain.len() / 4),
                flate2::Compression::default(),
            );
            enc.write_all(plain).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        Compression::Zstd => zstd::bulk::compress(plain, 3).map_err(failed),
    }
}

/// The Arrow schema of a configured `schema` (every column nullable).
pub fn configured_schema(columns: &std::collections::BTreeMap<String, ColumnType>) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, t)| {
            let dt = match t {
                ColumnType::String => DataType::Utf8,
                ColumnType::Int64 => DataType::Int64,
                ColumnType::Double => DataType::Float64,
                ColumnType::Boolean => DataType::Boolean,
            };
            Field::new(name, dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The schema of JSON objects `values` (arrow-json's inference, every column nullable); `None`
/// when no value is a JSON object to infer from.
pub fn infer_schema<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<SchemaRef> {
    let parsed: Vec<serde_json::Value> = values
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    if parsed.is_empty() {
        return None;
    }
    arrow_json::reader::infer_json_schema_from_iterator(parsed.into_iter().map(Ok))
        .ok()
        .filter(|s| !s.fields().is_empty())
        .map(Arc::new)
}

/// Decode `values` into one batch of `schema`; unknown fields are errors.
fn decode(schema: &SchemaRef, values: &[&[u8]]) -> Result<Option<RecordBatch>, String> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .with_batch_size(values.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for v in values {
        let mut rest: &[u8] = v;
        while !rest.is_empty() {
            let used = decoder.decode(rest).map_err(|e| e.to_string())?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        // A record that is not exactly one JSON object would shift the rows.
        if decoder.is_empty() && !v.iter().all(u8::is_ascii_whitespace) {
            return Err("not a JSON object".into());
        }
        decoder.decode(b"\n").map_err(|e| e.to_string())?;
    }
    decoder.flush().map_err(|e| e.to_string())
}

/// Records refused: index and reason.
pub type Refused = Vec<(usize, String)>;

/// The rows of `values` as one Parquet file; records that do not fit `schema` come back as
/// (index into `values`, reason) and are not in the file. `Ok(None)` when no record fits.
#[cfg(test)]
pub fn parquet_file(
    schema: &SchemaRef,
    values: &[&[u8]],
    compression: Compression,
) -> Result<(Option<Vec<u8>>, Refused), ConnectorError> {
    let (batch, rejected) = rows(schema, values)?;
    match batch {
        Some(batch) => Ok((Some(parquet_of(schema, &[batch], compression)?), rejected)),
        None => Ok((None, rejected)),
    }
}

/// The rows of `values` in `schema`; records that do not fit come back as (index into
/// `values`, reason) and are not in the batch. `None` when no record fits.
pub fn rows(
    schema: &SchemaRef,
    values: &[&[u8]],
) -> Result<(Option<RecordBatch>, Refused), ConnectorError> {
    let mut rejected = Vec::new();
    let batch = match decode(schema, values) {
        Ok(batch) => batch,
        Err(_) => {
            // Find the records that do not fit, one by one (only on this slow path).
            let mut good = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                match decode(schema, &[v]) {
                    Ok(Some(b)) if b.num_rows() == 1 => good.push(*v),
                    Ok(_) => rejected.push((i, "not a JSON object".to_string())),
                    Err(e) => rejected.push((i, format!("does not fit the Parquet schema: {e}"))),
                }
            }
            decode(schema, &good).map_err(|e| {
                ConnectorError::internal(format!("records that fit alone fail together: {e}"))
            })?
        }
    };
    Ok((batch.filter(|b| b.num_rows() > 0), rejected))
}

/// One Parquet file of `batches` (all of `schema`), one row group per batch.
pub fn parquet_of(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    compression: Compression,
) -> Result<Vec<u8>, ConnectorError> {
    let codec = match compression {
        Compression::None => ParquetCodec::UNCOMPRESSED,
        Compression::Gzip => ParquetCodec::GZIP(GzipLevel::default()),
        Compression::Zstd => ParquetCodec::ZSTD(ZstdLevel::default()),
    };
    let props = WriterProperties::builder().set_compression(codec).build();
    let failed = |e: parquet::errors::ParquetError| {
        ConnectorError::internal(format!("writing a Parquet file: {e}"))
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(failed)?;
    for batch in batches {
        writer.write(batch).map_err(failed)?;
    }
    writer.into_inner().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misfits_are_rejected_one_by_one() {
        let mut cols = std::collections::BTreeMap::new();
        cols.insert("key".to_string(), ColumnType::String);
        cols.insert("seq".to_string(), ColumnType::Int64);
        let schema = configured_schema(&cols);
        let values: Vec<&[u8]> = vec![
            br#"{"key":"a","seq":1}"#,
            br#"{"key":"b","seq":"not a number"}"#,
            br#"{"key":"c","seq":3,"extra":true}"#,
            b"[1,2]",
            br#"{"key":"d"}"#,
        ];
        let (file, rejected) = parquet_file(&schema, &values, Compression::Zstd).unwrap();
        let idx: Vec<usize> = rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2, 3], "{rejected:?}");
        let file = bytes::Bytes::from(file.unwrap());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn inference_and_compressed_lines() {
        let values: Vec<&[u8]> = vec![br#"{"a":1,"b":"x"}"#, br#"{"a":2,"b":"y"}"#];
        let schema = infer_schema(values.iter().copied()).unwrap();
        assert_eq!(schema.fields().len(), 2);
        let gz = json_lines(values.iter().copied(), 64, Compression::Gzip).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .unwrap();
        assert_eq!(out.lines().count(), 2);
        let zs = json_lines(values.iter().copied(), 64, Compression::Zstd).unwrap();
        assert_eq!(zstd::decode_all(&zs[..]).unwrap().len(), out.len());
    }
}
