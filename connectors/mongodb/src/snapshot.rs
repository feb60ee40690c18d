//! The initial snapshot: every document of the collection as it was at one cluster time `T`,
//! after which the change stream continues with the events after `T` — no gap (every change
//! after `T` is an event) and no duplicate (every change at or before `T` is in the read).
//!
//! The read runs inside a transaction with read concern `snapshot`, so all its batches see the
//! collection at the same `T`, which the server reports with the first batch
//! (`cursor.atClusterTime`). It runs on a task of its own that hands documents over a bounded
//! channel: `next_batch` only receives from the channel, so dropping it loses nothing. The
//! transaction must finish within the server's transaction lifetime (60 s by default on
//! MongoDB): collections too large for that need `transactionLifetimeLimitSeconds` raised.

use bson::{Bson, Document, Timestamp, doc};
use mongodb::Client;
use mongodb::options::{ReadConcern, TransactionOptions};
use sluice_core::ConnectorError;
use tokio::sync::mpsc;

use crate::error::mongo_error;

/// What the snapshot task sends.
#[derive(Debug)]
pub enum Item {
    /// The read's cluster time, first.
    Time(Timestamp),
    /// A document, in `_id` order.
    Document(Document),
    /// Everything was read.
    End,
    /// The read failed.
    Failed(ConnectorError),
}

/// Start reading `database.collection`; items arrive on the returned channel.
pub fn start(
    client: Client,
    database: String,
    collection: String,
    batch: usize,
) -> mpsc::Receiver<Item> {
    let (tx, rx) = mpsc::channel(batch.max(16) * 2);
    tokio::spawn(async move {
        let outcome = read(&client, &database, &collection, batch, &tx).await;
        let last = match outcome {
            Ok(()) => Item::End,
            Err(e) => Item::Failed(e),
        };
        let _ = tx.send(last).await;
    });
    rx
}

async fn read(
    client: &Client,
    database: &str,
    collection: &str,
    batch: usize,
    tx: &mpsc::Sender<Item>,
) -> Result<(), ConnectorError> {
    let what = format!("reading the snapshot of {database}.{collection}");
    let err = |e: mongodb::error::Error| mongo_error(&what, &e);
    let db = client.database(database);
    let mut session = client.start_session().await.map_err(err)?;
    session
        .start_transaction()
        .with_options(
            TransactionOptions::builder()
                .read_concern(ReadConcern::snapshot())
                .build(),
        )
        .await
        .map_err(err)?;
    let batch_size = i32::try_from(batch).unwrap_or(i32::MAX);
    let first = db
        .run_command(doc! { "find": collection, "sort": { "_id": 1 }, "batchSize": batch_size })
        .session(&mut session)
        .await
        .map_err(err)?;
    let cursor = first
        .get_document("cursor")
        .map_err(|_| ConnectorError::external(format!("{what}: the reply has no cursor")))?;
    // The server names the snapshot's time; a server that does not takes the operation time.
    let time = match cursor
        .get("atClusterTime")
        .or_else(|| first.get("operationTime"))
    {
        Some(Bson::Timestamp(t)) => *t,
        _ => {
            return Err(ConnectorError::external(format!(
                "{what}: the server did not say at which cluster time it read"
            )));
        }
    };
    if tx.send(Item::Time(time)).await.is_err() {
        return Ok(());
    }
    let mut id = cursor.get_i64("id").unwrap_or(0);
    let mut docs = cursor.get_array("firstBatch").cloned().unwrap_or_default();
    loop {
        for d in docs.drain(..) {
            if let Bson::Document(d) = d
                && tx.send(Item::Document(d)).await.is_err()
            {
                // The source was closed: nothing more is wanted.
                let _ = session.abort_transaction().await;
                return Ok(());
            }
        }
        if id == 0 {
            break;
        }
        let more = db
            .run_command(doc! { "getMore": id, "collection": collection, "batchSize": batch_size })
            .session(&mut session)
            .await
            .map_err(err)?;
        let cursor = more.get_document("cursor").map_err(|_| {
            ConnectorError::external(format!("{what}: a getMore reply has no cursor"))
        })?;
        id = cursor.get_i64("id").unwrap_or(0);
        docs = cursor.get_array("nextBatch").cloned().unwrap_or_default();
    }
    // Read only: nothing to commit, and aborting releases the snapshot at once.
    let _ = session.abort_transaction().await;
    Ok(())
}
