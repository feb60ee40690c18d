//! The S3 calls the sink makes: put (multipart above `part_size`), get, delete, head bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use sluice_aws::{error_code, sdk_error};
use sluice_core::ConnectorError;

/// An S3 client bound to one bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    name: String,
    part_size: usize,
}

impl Bucket {
    /// `name` through `client`; bodies above `part_size` go up in parts.
    pub fn new(client: Client, name: String, part_size: usize) -> Self {
        Self {
            client,
            name,
            part_size,
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fail unless the bucket exists and can be reached.
    pub async fn check(&self) -> Result<(), ConnectorError> {
        self.client
            .head_bucket()
            .bucket(&self.name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let not_found = e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                let mapped = sdk_error(&format!("HeadBucket {}", self.name), e);
                if not_found {
                    ConnectorError::config(format!(
                        "{} (the bucket does not exist)",
                        mapped.message
                    ))
                    .at("bucket")
                } else {
                    mapped
                }
            })
    }

    /// Put `body` at `key`: one PutObject, or a multipart upload when it is larger than a part.
    /// Either way the object appears whole or not at all.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), ConnectorError> {
        if body.len() > self.part_size {
            return self.put_multipart(key, body).await;
        }
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("PutObject s3://{}/{key}", self.name), e))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<(), ConnectorError> {
        let what = |op: &str| format!("{op} s3://{}/{key}", self.name);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&what("CreateMultipartUpload"), e))?;
        let Some(upload_id) = created.upload_id else {
            return Err(ConnectorError::external(format!(
                "{}: no upload id in the answer",
                what("CreateMultipartUpload")
            )));
        };
        match self.upload_parts(key, &upload_id, body).await {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.name)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| sdk_error(&what("CompleteMultipartUpload"), e))?;
                Ok(())
            }
            Err(e) => {
                // Parts of an abandoned upload are billed until aborted; the write is retried
                // with a new upload anyway.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.name)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(error = %sdk_error(&what("AbortMultipartUpload"), abort), "Could not abort a failed multipart upload.");
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: Bytes,
    ) -> Result<Vec<CompletedPart>, ConnectorError> {
        let mut parts = Vec::new();
        let mut start = 0;
        let mut number = 1;
        while start < body.len() {
            let end = (start + self.part_size).min(body.len());
            let answer = self
                .client
                .upload_part()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body.slice(start..end)))
                .send()
                .await
                .map_err(|e| {
                    sdk_error(
                        &format!("UploadPart {number} of s3://{}/{key}", self.name),
                        e,
                    )
                })?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(answer.e_tag)
                    .build(),
            );
            start = end;
            number += 1;
        }
        Ok(parts)
    }

    /// The object at `key`, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ConnectorError> {
        let what = format!("GetObject s3://{}/{key}", self.name);
        match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| {
                    ConnectorError::transient(format!("{what}: reading the body: {e}"))
                        .with_source(e)
                })?;
                Ok(Some(body.into_bytes()))
            }
            Err(e) if error_code(&e) == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    /// Delete the object at `key` (no error when there is none).
    pub async fn delete(&self, key: &str) -> Result<(), ConnectorError> {
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DeleteObject s3://{}/{key}", self.name), e))?;
        Ok(())
    }
}
