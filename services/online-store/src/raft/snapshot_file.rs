//! The on-disk snapshot format: a header with the snapshot's metadata, then the group's
//! `sm_data` records (keys without the group prefix, so a snapshot installs into any group),
//! then a CRC-32 of every byte after the magic.
//!
//! ```text
//! "QSNAP002" | meta length u32 | meta | (key length u32 | key | value length u32 | value)*
//!            | u32::MAX | record count u64 | crc32 u32
//! ```
//! Files are written to a temp name, fsynced and renamed, so a file with a final name is
//! complete. Names carry the zero-padded last index, so the newest sorts last. A received
//! snapshot is [`verify`]d whole before anything is replaced: a truncated or corrupted transfer
//! is refused (and sent again), never half-installed. Files of the first format (`QSNAP001`, no
//! checksum) are still read.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::codec::{decode, encode};
use super::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"QSNAP002";
const MAGIC_V1: &[u8; 8] = b"QSNAP001";
const END: u32 = u32::MAX;

/// A writer that keeps the CRC-32 of what passes through it.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.crc.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that keeps the CRC-32 of what passes through it.
struct SummedReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for SummedReader<R> {
    fn read(&mut self, bytes: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(bytes)?;
        self.crc.update(&bytes[..n]);
        Ok(n)
    }
}

/// Writes a snapshot of `records` with `meta` into `dir`; returns its final path.
pub fn write(
    dir: &Path,
    meta: &SnapshotMeta,
    records: impl IntoIterator<Item = io::Result<(Box<[u8]>, Box<[u8]>)>>,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let index = meta.last_log_id.as_ref().map(|id| id.index).unwrap_or(0);
    let final_path = dir.join(format!("snapshot-{index:020}.snap"));
    let tmp = dir.join(format!("snapshot-{index:020}.{}.tmp", std::process::id()));
    let mut file = BufWriter::new(File::create(&tmp)?);
    file.write_all(MAGIC)?;
    let mut out = Summed {
        inner: file,
        crc: crc32fast::Hasher::new(),
    };
    write_chunk(&mut out, &encode(meta)?)?;
    let mut count = 0u64;
    for record in records {
        let (key, value) = record?;
        write_chunk(&mut out, &key)?;
        write_chunk(&mut out, &value)?;
        count += 1;
    }
    out.write_all(&END.to_be_bytes())?;
    out.write_all(&count.to_be_bytes())?;
    let crc = out.crc.finalize();
    let mut file = out.inner;
    file.write_all(&crc.to_be_bytes())?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&tmp, &final_path)?;
    sync_dir(dir)?;
    Ok(final_path)
}

/// Reads the whole file at `path` and checks it: the format, every record's length, the record
/// count and (from the second format on) the checksum. Returns its metadata.
pub fn verify(path: &Path) -> io::Result<SnapshotMeta> {
    let mut file = BufReader::new(File::open(path)?);
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)?;
    let summed = match &magic {
        m if m == MAGIC => true,
        m if m == MAGIC_V1 => false,
        _ => return Err(not_a_snapshot(path)),
    };
    let mut reader = SummedReader {
        inner: file,
        crc: crc32fast::Hasher::new(),
    };
    let meta = decode(&read_chunk(&mut reader)?.ok_or_else(truncated)?)?;
    let mut count = 0u64;
    while read_chunk(&mut reader)?.is_some() {
        read_chunk(&mut reader)?.ok_or_else(truncated)?;
        count += 1;
    }
    let mut stored = [0u8; 8];
    reader.read_exact(&mut stored)?;
    if u64::from_be_bytes(stored) != count {
        return Err(corrupt("snapshot record count mismatch"));
    }
    if summed {
        let crc = reader.crc.clone().finalize();
        let mut stored = [0u8; 4];
        reader.inner.read_exact(&mut stored)?;
        if u32::from_be_bytes(stored) != crc {
            return Err(corrupt("snapshot checksum mismatch"));
        }
    }
    let mut rest = [0u8; 1];
    if reader.inner.read(&mut rest)? != 0 {
        return Err(corrupt("snapshot file has bytes after its end"));
    }
    Ok(meta)
}

/// Copies a received snapshot into `dir` durably, once it [`verify`]s; returns its final path.
pub fn persist_copy(dir: &Path, meta: &SnapshotMeta, mut source: File) -> io::Result<PathBuf> {
    use std::io::Seek;
    fs::create_dir_all(dir)?;
    let index = meta.last_log_id.as_ref().map(|id| id.index).unwrap_or(0);
    let final_path = dir.join(format!("snapshot-{index:020}.snap"));
    let tmp = dir.join(format!(
        "snapshot-{index:020}.{}.recv.tmp",
        std::process::id()
    ));
    source.seek(io::SeekFrom::Start(0))?;
    let mut out = File::create(&tmp)?;
    io::copy(&mut source, &mut out)?;
    out.sync_all()?;
    // Checked whole before it takes a snapshot's name (and before anything is replaced): a
    // truncated or corrupted transfer is refused here.
    if let Err(e) = verify(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &final_path)?;
    sync_dir(dir)?;
    Ok(final_path)
}

/// Opens a snapshot file: its metadata, and a reader positioned at the first record.
pub fn open(path: &Path) -> io::Result<(SnapshotMeta, Records)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic)?;
    if &magic != MAGIC && &magic != MAGIC_V1 {
        return Err(not_a_snapshot(path));
    }
    let meta = decode(&read_chunk(&mut reader)?.ok_or_else(truncated)?)?;
    Ok((
        meta,
        Records {
            reader,
            count: 0,
            done: false,
        },
    ))
}

/// The records of an open snapshot file.
pub struct Records {
    reader: BufReader<File>,
    count: u64,
    done: bool,
}

impl Iterator for Records {
    type Item = io::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let record = (|| {
            let Some(key) = read_chunk(&mut self.reader)? else {
                let mut count = [0u8; 8];
                self.reader.read_exact(&mut count)?;
                if u64::from_be_bytes(count) != self.count {
                    return Err(corrupt("snapshot record count mismatch"));
                }
                return Ok(None);
            };
            let value = read_chunk(&mut self.reader)?.ok_or_else(truncated)?;
            self.count += 1;
            Ok(Some((key, value)))
        })();
        match record {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The newest complete snapshot in `dir`, if any.
pub fn latest(dir: &Path) -> io::Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut snapshots: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    snapshots.sort();
    Ok(snapshots.pop())
}

/// Deletes the temp files a process killed while writing or receiving a snapshot left in `dir`
/// (call it before anything writes there): a cut transfer must not hold its disk space forever.
pub fn remove_leftovers(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            tracing::info!(file = %path.display(), "removing a snapshot file an earlier run left unfinished");
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Deletes every snapshot (and leftover temp file) in `dir` except `keep`.
pub fn remove_others(dir: &Path, keep: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path != keep {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l != END)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Reads one length-prefixed chunk; `None` at the end marker.
fn read_chunk(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len == END {
        return Ok(None);
    }
    // Grown as bytes arrive, so a corrupt length allocates no more than the file holds.
    let mut bytes = Vec::new();
    reader.take(u64::from(len)).read_to_end(&mut bytes)?;
    if bytes.len() != len as usize {
        return Err(truncated());
    }
    Ok(Some(bytes))
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn not_a_snapshot(path: &Path) -> io::Error {
    corrupt(&format!("{} is not a Quiver snapshot", path.display()))
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "snapshot file is truncated")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_length_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.snap");
        // The magic, then a chunk declaring 4 GiB - 2 bytes that holds three.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(u32::MAX - 1).to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3]);
        fs::write(&path, bytes).unwrap();
        let error = open(&path).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    }

    /// A snapshot file is read from disk and was received from another node: mutated files must
    /// open and read to their end, or fail with an error, never panic or allocate what the file
    /// does not hold.
    #[test]
    fn fuzz_mutated_snapshot_files_are_read_or_refused() {
        use quiver_core::mutation::{self, mutate, Rng};
        let dir = tempfile::tempdir().unwrap();
        let meta = SnapshotMeta::default();
        let records = (0..20u8).map(|i| Ok((vec![i; 1 + i as usize].into(), vec![7u8; 40].into())));
        let valid = fs::read(write(dir.path(), &meta, records).unwrap()).unwrap();
        let path = dir.path().join("mutated.snap");
        let mut rng = Rng::from_env(0xC0FF_EE00_1234_5678);
        let (mut opened, mut complete) = (0, 0);
        for _ in 0..mutation::cases(2_000) {
            let bytes = mutate(&mut rng, valid.clone());
            fs::write(&path, &bytes).unwrap();
            let verified = verify(&path).is_ok();
            if let Ok((_, records)) = open(&path) {
                opened += 1;
                complete += usize::from(records.into_iter().all(|r| r.is_ok()));
            }
            // Whatever changed, the structure or the checksum says so.
            assert!(
                bytes == valid || !verified,
                "a mutated snapshot passed verification"
            );
        }
        assert!(
            opened > 0 && complete < opened,
            "{opened} opened, {complete} read whole"
        );
    }

    #[test]
    fn a_snapshot_verifies_and_any_flipped_bit_or_cut_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let records = (0..50u8).map(|i| Ok((vec![i; 3].into(), vec![i; 100].into())));
        let path = write(dir.path(), &SnapshotMeta::default(), records).unwrap();
        assert!(verify(&path).is_ok());
        let valid = fs::read(&path).unwrap();
        let broken = dir.path().join("broken.snap");
        for at in (8..valid.len()).step_by(97) {
            let mut bytes = valid.clone();
            bytes[at] ^= 0x10;
            fs::write(&broken, &bytes).unwrap();
            assert!(verify(&broken).is_err(), "a flipped bit at {at} passed");
            fs::write(&broken, &valid[..at]).unwrap();
            assert!(verify(&broken).is_err(), "a file cut at {at} passed");
        }
    }
}
