//! Sluice's HTTP connector: the `http` sink, JSON POSTed to a URL (webhooks for alerts: Slack,
//! PagerDuty, Opsgenie, an in-house service).
//!
//! - one record per request (`encoding = "json"`), or up to `max_records` per request as a JSON
//!   array or NDJSON;
//! - headers and credentials (`bearer`, basic) from the job, usually `${env:...}`; never logged,
//!   and messages show only the URL's scheme, host and port (webhook URLs hold secrets);
//! - 408, 429, 5xx and unanswered requests tried again, after `Retry-After` when the server
//!   sends one; other 4xx refusals dead-lettered with the status and the response body;
//! - at-least-once (see [`sink`]).
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod sink;

use sluice_core::Registry;

pub use config::{Encoding, HttpSinkConfig};
pub use sink::{HttpSink, HttpSinkConnector};

/// Register the HTTP sink.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<HttpSinkConnector>();
}
