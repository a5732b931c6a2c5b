//! Record batches written as one Parquet file on a thread of its own, so encoding a batch
//! overlaps receiving the next (`quiver snapshot`: encoding was most of the client's CPU).

use std::path::PathBuf;

use anyhow::Context;
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use quiver_lake::event_file::{parquet_properties, TRAINING_SET_ROW_GROUP_ROWS};
use tokio::sync::{mpsc, oneshot};

/// Batches waiting to be encoded, at most (each is one answer batch of the snapshot service).
const QUEUED: usize = 4;

/// Where the file goes.
pub enum Destination {
    /// A local file, created with the first batch.
    File(PathBuf),
    /// Memory, for the caller to upload.
    Memory,
}

/// A Parquet file being written.
pub struct ParquetSink {
    batches: mpsc::Sender<RecordBatch>,
    /// The writer thread's outcome; closed without one if the thread panicked.
    written: oneshot::Receiver<anyhow::Result<Option<Vec<u8>>>>,
}

impl ParquetSink {
    /// Starts the writer thread.
    pub fn start(destination: Destination) -> Self {
        let (batches, mut receiver) = mpsc::channel::<RecordBatch>(QUEUED);
        let (done, written) = oneshot::channel();
        std::thread::spawn(move || {
            let outcome = (|| -> anyhow::Result<Option<Vec<u8>>> {
                let Some(first) = receiver.blocking_recv() else {
                    return Ok(None);
                };
                match destination {
                    Destination::File(path) => {
                        let file = std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        encode(file, first, &mut receiver)?;
                        Ok(None)
                    }
                    Destination::Memory => Ok(Some(encode(Vec::new(), first, &mut receiver)?)),
                }
            })();
            // The caller may have gone (an error of its own); nothing is left to tell.
            let _ = done.send(outcome);
        });
        Self { batches, written }
    }

    /// Queues `batch`; waits while the writer is `QUEUED` batches behind.
    pub async fn write(&self, batch: RecordBatch) -> anyhow::Result<()> {
        if self.batches.send(batch).await.is_err() {
            // The writer stopped on an error, which `finish` reports.
            anyhow::bail!("the Parquet writer stopped");
        }
        Ok(())
    }

    /// Waits, without holding up the async runtime, for every queued batch to be written and
    /// the file closed; the file's bytes for [`Destination::Memory`] (`None` when no batch
    /// came).
    pub async fn finish(self) -> anyhow::Result<Option<Vec<u8>>> {
        drop(self.batches);
        self.written
            .await
            .map_err(|_| anyhow::anyhow!("the Parquet writer panicked"))?
    }
}

/// Writes `first` and every batch after it to `out` as one Parquet file; returns `out`.
fn encode<W: std::io::Write + Send>(
    out: W,
    first: RecordBatch,
    rest: &mut mpsc::Receiver<RecordBatch>,
) -> anyhow::Result<W> {
    let schema = first.schema();
    let properties = parquet_properties(&schema, TRAINING_SET_ROW_GROUP_ROWS);
    let mut writer = ArrowWriter::try_new(out, schema, Some(properties))?;
    writer.write(&first)?;
    while let Some(batch) = rest.blocking_recv() {
        writer.write(&batch)?;
    }
    Ok(writer.into_inner()?)
}
