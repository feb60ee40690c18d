//! What a job's check finds out beyond loading, the same for `sluice validate` and the worker's
//! create and update: each sink asked about its destination without changing anything
//! (`Sink::check`), refusals located in the job file like load errors, and what could not be
//! asked said rather than assumed.

use super::load::{ConfigError, JobError, LoadedJob};
use super::path::FieldPath;
use crate::connector::SinkContext;
use crate::error::{ErrorKind, with_causes};

/// What [`LoadedJob::check`] could not find out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unchecked {
    /// Sinks whose service could not be asked (unreachable, refused the connection), each
    /// with why: the job may still be fine, or not.
    pub not_asked: Vec<String>,
    /// What loading cannot check without side effects, per connector (`Source::unchecked`,
    /// `Sink::unchecked`): found out when the job runs.
    pub needs_running: Vec<String>,
}

impl LoadedJob {
    /// Ask each sink whether it can do this job where it writes (`Sink::check`: e.g. that a
    /// MongoDB server has transactions for exactly-once). A refusal is a [`JobError`] at the
    /// field it names (file, line, path), as a load error would be; a sink whose service
    /// could not be asked is listed in [`Unchecked::not_asked`]. Nothing is changed anywhere.
    pub async fn check(&mut self) -> Result<Unchecked, JobError> {
        let doc = toml_edit::Document::parse(self.text.clone()).ok();
        let mut errors = Vec::new();
        let mut unchecked = Unchecked::default();
        for (i, plan) in self.sinks.iter_mut().enumerate() {
            let ctx = SinkContext {
                job: self.name.clone(),
                sink: plan.name.clone(),
                guarantee: self.delivery.guarantee,
            };
            let Err(e) = plan.sink.check(&ctx).await else {
                continue;
            };
            if e.kind != ErrorKind::Config {
                unchecked.not_asked.push(self.expanded.redact(&format!(
                    "sink {:?} ({}): could not be asked: {}",
                    plan.name,
                    plan.type_name,
                    with_causes(&e)
                )));
                continue;
            }
            let sink = FieldPath::root().key("sinks").index(i);
            // `guarantee` is the job's, not the sink's: the delivery section names it.
            let path = match e.field.as_deref() {
                Some("guarantee") => FieldPath::root().key("delivery").key("guarantee"),
                Some(f) => FieldPath::parse(f).map_or_else(|| sink.clone(), |f| f.under(&sink)),
                None => sink.clone(),
            };
            errors.push(ConfigError {
                file: self.file.clone(),
                line: doc.as_ref().and_then(|d| path.line_in(d)),
                path: path.to_string(),
                message: self.expanded.redact(&format!(
                    "{sink} ({:?}, type {:?}): {}",
                    plan.name, plan.type_name, e.message
                )),
            });
        }
        if !errors.is_empty() {
            return Err(JobError { errors });
        }
        unchecked.needs_running = self
            .source
            .unchecked()
            .into_iter()
            .map(|u| format!("source ({}): {u}", self.source_type))
            .collect();
        for plan in self.sinks.iter().chain(self.dead_letter.as_ref()) {
            unchecked.needs_running.extend(
                plan.sink
                    .unchecked()
                    .into_iter()
                    .map(|u| format!("sink {:?} ({}): {u}", plan.name, plan.type_name)),
            );
        }
        Ok(unchecked)
    }
}
