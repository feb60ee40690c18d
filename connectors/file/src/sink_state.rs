//! Exactly-once for the file sink: a sidecar file records, after every write, which file is
//! active (its rotation number), how long it was and which checkpoint that length covers. It is
//! stored after the data is fsync'd.
//!
//! The sidecar holds two slots of equal size; each store overwrites the older slot in place
//! with a sequence number one higher than the newer one and a CRC, then `fdatasync`s it: the
//! file keeps its size and blocks, so that sync flushes one block and no metadata (the
//! write-rename-fsync-directory replacement it stands for cost two more syncs per write, which
//! other processes' syncs made slow). Loading takes the valid slot with the highest sequence
//! number: a slot torn by a crash fails its CRC, and the other slot — the state before the write
//! that was cut short — is the committed one. The file is created, or replaced when a checkpoint
//! outgrows its slots, atomically (write, fsync, rename, fsync the directory). A sidecar of one
//! JSON document (written before the slots) is read and replaced by slots on the next store.
//!
//! Recovery relies only on what the sink owns — the sidecar and the active file `<path>` —
//! never on which rotated files `<path>.N` are on disk: other processes may ship them away at
//! any time. The protocol:
//!
//! - Write: append, fsync, store `{rotations, length, checkpoint}`.
//! - Rotate, only at a committed boundary (the active file holds exactly `length` committed
//!   bytes, `length > 0`): rename `<path>` to `<path>.N` (N: the first free number after
//!   `rotations`), create an empty `<path>` and fsync the directory, then store
//!   `{rotations: N, length: 0, checkpoint}` — the rotation commits on its own, before any new
//!   data goes into the new file.
//! - Open: if `<path>` is missing or empty while the sidecar says `length > 0`, a rotation
//!   stopped before its own commit: its rotated file is complete and committed, so the
//!   rotation is finished (sidecar `{rotations + 1, 0}`), wherever that file is now. Otherwise
//!   anything past `length` (written by a run that crashed before its checkpoint) is cut off;
//!   a file shorter than `length` was changed outside Sluice and is refused.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::Checkpoint;

/// What the sidecar holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SinkState {
    /// Job that owns the file.
    pub job: String,
    /// Sink name within the job.
    pub sink: String,
    /// The number of the last rotated file this sink made (`<path>.N`); 0 before the first
    /// rotation. The next rotation takes the first free number after it.
    pub rotations: u32,
    /// Length of the active file `<path>` at the checkpoint.
    pub length: u64,
    /// The checkpoint covered by everything written up to here.
    pub checkpoint: Checkpoint,
    /// Sequence number of the slot this state was loaded from or stored in (not stored in the
    /// payload: it is the slot's own header).
    #[serde(skip)]
    pub seq: u64,
}

/// `<path>.sluice-checkpoint`
pub(crate) fn sidecar_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sluice-checkpoint", path.display()))
}

/// `<path>.<n>`
pub(crate) fn rotated_path(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// The first `n >= from` with no `<path>.<n>`: a rotation never overwrites a file, ours or not.
pub(crate) fn free_rotation(path: &Path, from: u32) -> u32 {
    let mut n = from.max(1);
    while rotated_path(path, n).exists() {
        n += 1;
    }
    n
}

/// Starts every slot; the version of the slot layout.
const MAGIC: &[u8; 8] = b"SLUICE2\n";
/// Magic, sequence number (u64), payload length (u32), CRC-32 of the three before it and the
/// payload (u32); little-endian.
const HEADER: usize = 24;
/// Slots are whole blocks, so overwriting one never touches the other's block.
const BLOCK: usize = 4096;

/// One slot of `size` bytes: header, JSON payload, zeros.
fn encode_slot(seq: u64, payload: &[u8], size: usize) -> Vec<u8> {
    let mut slot = Vec::with_capacity(size);
    slot.extend_from_slice(MAGIC);
    slot.extend_from_slice(&seq.to_le_bytes());
    slot.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&slot);
    crc.update(payload);
    slot.extend_from_slice(&crc.finalize().to_le_bytes());
    slot.extend_from_slice(payload);
    slot.resize(size, 0);
    slot
}

/// The sequence number and payload of a slot, if it is whole (not torn, not zeros).
fn decode_slot(slot: &[u8]) -> Option<(u64, &[u8])> {
    if slot.len() < HEADER || &slot[..8] != MAGIC {
        return None;
    }
    let seq = u64::from_le_bytes(slot[8..16].try_into().ok()?);
    let len = u32::from_le_bytes(slot[16..20].try_into().ok()?) as usize;
    let stored = u32::from_le_bytes(slot[20..24].try_into().ok()?);
    let payload = slot.get(HEADER..HEADER + len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&slot[..20]);
    crc.update(payload);
    (crc.finalize() == stored).then_some((seq, payload))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Read the sidecar, if any: the newer whole slot (or a sidecar of one JSON document).
pub(crate) fn load(path: &Path) -> std::io::Result<Option<SinkState>> {
    let side = sidecar_path(path);
    let bytes = match std::fs::read(&side) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", side.display())));
    }
    let newest = bytes
        .chunks(bytes.len().div_ceil(2).max(1))
        .filter_map(decode_slot)
        .max_by_key(|(seq, _)| *seq)
        .ok_or_else(|| invalid(format!("{} holds no whole checkpoint", side.display())))?;
    let mut state: SinkState = serde_json::from_slice(newest.1)
        .map_err(|e| invalid(format!("{}: {e}", side.display())))?;
    state.seq = newest.0;
    Ok(Some(state))
}

/// Store `state` durably, in the sidecar's older slot (see the module doc); `state.seq`
/// becomes the new slot's sequence number.
pub(crate) fn store(path: &Path, state: &mut SinkState) -> std::io::Result<()> {
    let payload = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let seq = state.seq + 1;
    let side = sidecar_path(path);
    let in_place = match OpenOptions::new().read(true).write(true).open(&side) {
        Ok(f) => {
            let len = f.metadata()?.len() as usize;
            let mut first = [0u8; 8];
            let slots = len >= 2 * BLOCK
                && len.is_multiple_of(2 * BLOCK)
                && f.read_exact_at(&mut first, 0).is_ok()
                && first[0] != b'{';
            (slots && HEADER + payload.len() <= len / 2).then_some((f, len / 2))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    match in_place {
        Some((f, size)) => {
            f.write_all_at(&encode_slot(seq, &payload, size), (seq % 2) * size as u64)?;
            f.sync_data()?;
        }
        None => {
            // New, grown or in the old format: both slots written and swapped in atomically.
            let size = (HEADER + payload.len()).div_ceil(BLOCK) * BLOCK;
            let mut slots = vec![0u8; 2 * size];
            let at = (seq % 2) as usize * size;
            slots[at..at + size].copy_from_slice(&encode_slot(seq, &payload, size));
            let tmp = PathBuf::from(format!("{}.tmp", side.display()));
            let mut f = File::create(&tmp)?;
            f.write_all(&slots)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &side)?;
            sync_dir(path)?;
        }
    }
    state.seq = seq;
    Ok(())
}

/// fsync the directory holding `path`, so that names created or renamed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    DIR_SYNCS.with(|n| n.set(n.get() + 1));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
thread_local! {
    /// Directory fsyncs made by this thread, so tests can check that a new name is made durable.
    pub(crate) static DIR_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What recovery did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Uncommitted bytes cut from the active file.
    pub discarded: u64,
    /// A rotation that stopped before its own commit was finished.
    pub finished_rotation: bool,
}

/// Bring the active file back to the state the sidecar describes (see the module doc); with a
/// finished rotation `state` is updated and stored.
pub(crate) fn recover(path: &Path, state: &mut SinkState) -> std::io::Result<Recovered> {
    let mut done = Recovered::default();
    let len = match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if state.length > 0 && len.unwrap_or(0) == 0 {
        state.rotations += 1;
        state.length = 0;
        store(path, state)?;
        done.finished_rotation = true;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > state.length {
        done.discarded = len - state.length;
        file.set_len(state.length)?;
        file.sync_all()?;
    } else if len < state.length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes but its exactly-once checkpoint says {} were committed: the file was changed outside Sluice",
                path.display(),
                state.length
            ),
        ));
    }
    sync_dir(path)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_uncommitted_bytes_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "a\nb\n").unwrap();
        let mut state = SinkState {
            length: 2,
            ..Default::default()
        };
        store(&p, &mut state).unwrap();
        assert_eq!(load(&p).unwrap(), Some(state.clone()));
        assert_eq!(recover(&p, &mut state).unwrap().discarded, 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\n");
        std::fs::write(&p, "a").unwrap();
        assert!(recover(&p, &mut state).is_err(), "shorter than committed");
    }

    #[test]
    fn finishes_a_rotation_cut_short_even_when_the_rotated_file_was_shipped_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "a\nb\n").unwrap();
        let mut state = SinkState {
            rotations: 7,
            length: 4,
            ..Default::default()
        };
        store(&p, &mut state).unwrap();
        // Renamed, then killed before the new file was created; a shipper took the file.
        std::fs::rename(&p, rotated_path(&p, 8)).unwrap();
        std::fs::rename(rotated_path(&p, 8), dir.path().join("shipped")).unwrap();
        let done = recover(&p, &mut state).unwrap();
        assert!(done.finished_rotation);
        assert_eq!((state.rotations, state.length), (8, 0));
        assert_eq!(load(&p).unwrap(), Some(state.clone()));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        assert_eq!(free_rotation(&p, state.rotations + 1), 9);
    }

    fn state_with(length: u64) -> SinkState {
        SinkState {
            job: "j".into(),
            sink: "s".into(),
            length,
            ..Default::default()
        }
    }

    #[test]
    fn stores_in_place_after_the_first_store_and_survives_a_torn_slot() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let syncs = || DIR_SYNCS.with(|n| n.get());
        let mut state = state_with(1);
        store(&p, &mut state).unwrap();
        let after_create = syncs();
        for length in 2..=5 {
            state.length = length;
            store(&p, &mut state).unwrap();
            assert_eq!(load(&p).unwrap().unwrap().length, length);
        }
        assert_eq!(syncs(), after_create, "in place: no directory sync");
        assert_eq!(state.seq, 5);
        assert_eq!(std::fs::metadata(sidecar_path(&p)).unwrap().len(), 8192);
        // A crash inside the next store tears its slot (the older one, seq 6 % 2 = 0): the
        // state before that store is what loads.
        state.length = 6;
        let torn = encode_slot(6, &serde_json::to_vec(&state).unwrap(), BLOCK);
        let f = OpenOptions::new()
            .write(true)
            .open(sidecar_path(&p))
            .unwrap();
        f.write_all_at(&torn[..HEADER + 10], 0).unwrap();
        let loaded = load(&p).unwrap().unwrap();
        assert_eq!((loaded.length, loaded.seq), (5, 5));
        // Both slots damaged: an error, never a guess.
        f.write_all_at(&[0xff; 64], BLOCK as u64).unwrap();
        let err = load(&p).unwrap_err();
        assert!(err.to_string().contains("no whole checkpoint"), "{err}");
    }

    #[test]
    fn grows_its_slots_for_a_large_checkpoint_and_reads_the_old_json_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        let mut state = state_with(3);
        std::fs::write(sidecar_path(&p), serde_json::to_vec(&state).unwrap()).unwrap();
        let mut loaded = load(&p).unwrap().unwrap();
        assert_eq!((loaded.length, loaded.seq), (3, 0));
        store(&p, &mut loaded).unwrap();
        assert_eq!(std::fs::metadata(sidecar_path(&p)).unwrap().len(), 8192);
        for i in 0..500 {
            state
                .checkpoint
                .offsets
                .insert(format!("partition-{i}").into(), sluice_core::Offset::Int(i));
        }
        state.seq = loaded.seq;
        store(&p, &mut state).unwrap();
        let len = std::fs::metadata(sidecar_path(&p)).unwrap().len();
        assert!(len > 8192 && len.is_multiple_of(8192), "{len}");
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back, state);
        state.length = 9;
        store(&p, &mut state).unwrap();
        assert_eq!(load(&p).unwrap().unwrap().length, 9);
        assert_eq!(std::fs::metadata(sidecar_path(&p)).unwrap().len(), len);
    }
}
