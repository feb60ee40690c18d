//! The exactly-once checkpoint of one (job, sink): a document in `_sluice_checkpoints` (in the
//! sink's database) written by the same transaction as the documents it covers.
//!
//! Protocol:
//! - the document's `_id` is `"<job>/<sink>"`; it holds `job`, `sink`, `destination` (the
//!   database and collection it covers, as configured: `db.readings`, `db.{field:kind}`) and
//!   `offsets`, one `{p, i}` (integer offset) or `{p, t}` (text offset) per source partition —
//!   an array, because partition names may hold dots and `$`, which field names may not;
//! - each write is one transaction: the batch's documents, then a replace (upsert) of this
//!   document with the batch's checkpoint, then commit. Either both are durable or neither;
//! - on open ([`Checkpoints::claim`]) a document of this (job, sink) naming another destination
//!   is refused (the sink's name now means another sink, or its collection changed: believing
//!   it would skip that collection's history), and so is one of another (job, sink) naming this
//!   destination (the job or sink was renamed: ignoring it would send everything again);
//! - a restart reads the document ([`Checkpoints::load`]) and the runtime resumes the source
//!   strictly after it.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{ReplaceOneModel, WriteModel};
use mongodb::{ClientSession, Collection, Namespace};
use sluice_core::{Checkpoint, ConnectorError, Offset, Partition};

use crate::error::mongo_error;

/// Reads and writes one sink's checkpoint document.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    coll: Collection<Document>,
    id: String,
    job: String,
    sink: String,
    destination: String,
}

impl Checkpoints {
    /// The checkpoint of `job`/`sink` covering `destination`, in `coll`.
    pub fn new(coll: Collection<Document>, job: &str, sink: &str, destination: &str) -> Self {
        Self {
            coll,
            id: format!("{job}/{sink}"),
            job: job.to_string(),
            sink: sink.to_string(),
            destination: destination.to_string(),
        }
    }

    fn what(&self) -> String {
        format!("the checkpoint {} in {}", self.id, self.coll.namespace())
    }

    /// Make the collection if it is missing: creating one inside a transaction needs 4.4+,
    /// and a concurrent creation aborts the transaction.
    pub async fn ensure_collection(&self) -> Result<(), ConnectorError> {
        let db = self.coll.client().database(&self.coll.namespace().db);
        let names = db
            .list_collection_names()
            .filter(doc! { "name": self.coll.name() })
            .await
            .map_err(|e| mongo_error(&format!("listing collections of {}", db.name()), &e))?;
        if names.is_empty()
            && let Err(e) = db.create_collection(self.coll.name()).await
        {
            // 48: NamespaceExists (made meanwhile by another sink).
            let exists =
                matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 48);
            if !exists {
                return Err(mongo_error(
                    &format!("creating {}", self.coll.namespace()),
                    &e,
                ));
            }
        }
        Ok(())
    }

    /// Check the stored checkpoints against this sink (see the module docs).
    pub async fn claim(&self) -> Result<(), ConnectorError> {
        let filter = doc! { "$or": [ { "_id": &self.id }, { "destination": &self.destination } ] };
        let found: Vec<Document> = self
            .coll
            .find(filter)
            .projection(doc! { "offsets": 0 })
            .await
            .map_err(|e| mongo_error(&format!("reading {}", self.what()), &e))?
            .try_collect()
            .await
            .map_err(|e| mongo_error(&format!("reading {}", self.what()), &e))?;
        for d in found {
            let id = d.get_str("_id").unwrap_or_default();
            let destination = d.get_str("destination").unwrap_or_default();
            if id == self.id && destination != self.destination {
                return Err(ConnectorError::config(format!(
                    "{} covers {destination}, not {}: the sink's name now means another sink, or its target changed. Name the sink (`name = ...`) or reset the job's offsets (`sluice reset`)",
                    self.what(),
                    self.destination
                )));
            }
            if id != self.id {
                return Err(ConnectorError::config(format!(
                    "{} is already covered by the checkpoint {id} of another job or sink: was the job or sink renamed? Rename it back, or delete that document to send everything again",
                    self.destination
                )));
            }
        }
        Ok(())
    }

    /// The stored checkpoint (empty when there is none), read in `session` when given.
    pub async fn load(
        &self,
        session: Option<&mut ClientSession>,
    ) -> Result<Checkpoint, ConnectorError> {
        let find = self.coll.find_one(doc! { "_id": &self.id });
        let found = match session {
            Some(s) => find.session(s).await,
            None => find.await,
        }
        .map_err(|e| mongo_error(&format!("reading {}", self.what()), &e))?;
        let mut cp = Checkpoint::default();
        let Some(found) = found else {
            return Ok(cp);
        };
        let offsets = found.get_array("offsets").map_err(|_| {
            ConnectorError::external(format!("{} has no `offsets` array", self.what()))
        })?;
        for entry in offsets {
            let parsed = entry.as_document().and_then(|e| {
                let p: Partition = e.get_str("p").ok()?.into();
                let offset = match (e.get("i"), e.get_str("t")) {
                    (Some(Bson::Int64(i)), _) => Offset::Int(*i),
                    (_, Ok(t)) => Offset::Text(t.to_string()),
                    _ => return None,
                };
                Some((p, offset))
            });
            let (p, offset) = parsed.ok_or_else(|| {
                ConnectorError::external(format!(
                    "{} holds an unreadable entry {entry}",
                    self.what()
                ))
            })?;
            cp.offsets.insert(p, offset);
        }
        Ok(cp)
    }

    /// The document storing `cp`.
    fn document(&self, cp: &Checkpoint) -> Document {
        let offsets: Vec<Bson> = cp
            .offsets
            .iter()
            .map(|(p, o)| {
                Bson::Document(match o {
                    Offset::Int(i) => doc! { "p": p.as_ref(), "i": *i },
                    Offset::Text(t) => doc! { "p": p.as_ref(), "t": t },
                })
            })
            .collect();
        doc! {
            "_id": &self.id,
            "job": &self.job,
            "sink": &self.sink,
            "destination": &self.destination,
            "offsets": offsets,
        }
    }

    /// The write of `cp`, to go into the same bulk write (and transaction) as the documents.
    pub fn model(&self, cp: &Checkpoint) -> WriteModel {
        WriteModel::ReplaceOne(
            ReplaceOneModel::builder()
                .namespace(Namespace::new(
                    self.coll.namespace().db,
                    self.coll.name().to_string(),
                ))
                .filter(doc! { "_id": &self.id })
                .replacement(self.document(cp))
                .upsert(true)
                .build(),
        )
    }

    /// Store `cp` (in `session`'s transaction when given).
    pub async fn store(
        &self,
        cp: &Checkpoint,
        session: Option<&mut ClientSession>,
    ) -> Result<(), ConnectorError> {
        let replace = self
            .coll
            .replace_one(doc! { "_id": &self.id }, self.document(cp))
            .upsert(true);
        match session {
            Some(s) => replace.session(s).await,
            None => replace.await,
        }
        .map_err(|e| mongo_error(&format!("storing {}", self.what()), &e))?;
        Ok(())
    }

    /// Forget the checkpoint (`None`) or set some partitions' positions, keeping the others.
    pub async fn reset(&self, partitions: Option<&Checkpoint>) -> Result<(), ConnectorError> {
        let what = format!("resetting {}", self.what());
        match partitions {
            None => {
                self.coll
                    .delete_one(doc! { "_id": &self.id })
                    .await
                    .map_err(|e| mongo_error(&what, &e))?;
            }
            Some(set) => {
                let mut cp = self.load(None).await?;
                for (p, o) in &set.offsets {
                    cp.offsets.insert(p.clone(), o.clone());
                }
                self.store(&cp, None).await?;
            }
        }
        Ok(())
    }
}
