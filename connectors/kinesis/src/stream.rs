//! A stream named by its name or its ARN, and the calls that name it either way.

use std::fmt;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::operation::get_records::builders::GetRecordsFluentBuilder;
use aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder;
use aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder;
use aws_sdk_kinesis::operation::put_records::builders::PutRecordsFluentBuilder;
use sluice_aws::sdk_error;
use sluice_core::ConnectorError;

/// `stream` of a config: a name, or an ARN (`arn:aws:kinesis:region:account:stream/name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamRef {
    /// A stream name.
    Name(String),
    /// A stream ARN.
    Arn(String),
}

/// What DescribeStreamSummary says about a stream.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The stream's ARN.
    pub arn: String,
    /// `ACTIVE`, `CREATING`, ...
    pub status: String,
    /// Open shards.
    pub open_shards: i32,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} open shards)", self.status, self.open_shards)
    }
}

impl StreamRef {
    /// Read `stream` of a config.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("arn:") {
            StreamRef::Arn(text.to_string())
        } else {
            StreamRef::Name(text.to_string())
        }
    }

    /// The stream's name (the last part of an ARN).
    pub fn name(&self) -> &str {
        match self {
            StreamRef::Name(n) => n,
            StreamRef::Arn(a) => a.rsplit('/').next().unwrap_or(a),
        }
    }

    /// DescribeStreamSummary: the stream must exist.
    pub async fn describe(&self, client: &Client) -> Result<Summary, ConnectorError> {
        let call = client.describe_stream_summary();
        let call = match self {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        };
        let out = call
            .send()
            .await
            .map_err(|e| sdk_error(&format!("describing Kinesis stream {self}"), e))?;
        let d = out.stream_description_summary().ok_or_else(|| {
            ConnectorError::external(format!("describing Kinesis stream {self}: no description"))
        })?;
        Ok(Summary {
            arn: d.stream_arn().to_string(),
            status: d.stream_status().as_str().to_string(),
            open_shards: d.open_shard_count(),
        })
    }

    /// A PutRecords call on this stream.
    pub fn put_records(&self, client: &Client) -> PutRecordsFluentBuilder {
        let call = client.put_records();
        match self {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        }
    }

    /// The first ListShards call on this stream (later pages take only the token).
    pub fn list_shards(&self, client: &Client) -> ListShardsFluentBuilder {
        let call = client.list_shards();
        match self {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        }
    }

    /// A GetShardIterator call on this stream.
    pub fn get_shard_iterator(&self, client: &Client) -> GetShardIteratorFluentBuilder {
        let call = client.get_shard_iterator();
        match self {
            StreamRef::Name(n) => call.stream_name(n),
            StreamRef::Arn(a) => call.stream_arn(a),
        }
    }

    /// A GetRecords call (the iterator names the stream; the ARN is passed when known).
    pub fn get_records(&self, client: &Client) -> GetRecordsFluentBuilder {
        let call = client.get_records();
        match self {
            StreamRef::Name(_) => call,
            StreamRef::Arn(a) => call.stream_arn(a),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRef::Name(n) => f.write_str(n),
            StreamRef::Arn(a) => f.write_str(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        let arn = StreamRef::parse("arn:aws:kinesis:eu-west-1:123456789012:stream/readings");
        assert!(matches!(arn, StreamRef::Arn(_)));
        assert_eq!(arn.name(), "readings");
        assert_eq!(StreamRef::parse("readings").name(), "readings");
    }
}
