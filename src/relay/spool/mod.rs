//! A destination's disk spool (issue #5, storage layer): append-only
//! segment files of checksummed records, each record one [`Batch`] of
//! canonical lines. Batches are appended at the tail; replay reads the
//! oldest records first and deletes a segment only after every record in
//! it was handed over and committed.
//!
//! Record layout, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `CWS1` |
//! | 4 | payload length |
//! | 4 | lines in the payload |
//! | 8 | when it was spooled, epoch ms (for the oldest-age metric) |
//! | 4 | CRC-32 of the length, lines, time and payload |
//! | n | payload: newline-terminated lines |
//!
//! A torn write or a flipped bit fails the length or CRC test. The reader
//! then looks for the next magic that starts a valid record, so the good
//! records on both sides of the damage are kept; what was skipped is
//! counted, never a crash.
//!
//! [`crate::relay::destination`] decides when to spool: a full memory
//! queue, a destination that is down, and shutdown.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;

use crate::relay::queue::Batch;

const MAGIC: [u8; 4] = *b"CWS1";
const HEADER: usize = 24;

/// Spool limits of one destination.
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    /// Bytes on disk this spool may hold; protects the disk.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size, so that
    /// replayed data is freed a segment at a time.
    pub segment_bytes: u64,
    /// The largest record accepted when reading; a longer length field is
    /// damage, not a reason to allocate.
    pub max_record_bytes: u32,
    /// How often appended data is fsynced: what a power cut may lose.
    pub fsync_interval: Duration,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
            fsync_interval: Duration::from_millis(1000),
        }
    }
}

/// Why the spool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool holds `max_bytes` already; the caller applies its policy.
    #[error("spool full ({0} bytes)")]
    Full(u64),
    /// The disk said no (full, read-only, gone).
    #[error("spool I/O: {0}")]
    Io(#[from] io::Error),
}

/// What opening found and what reading has skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SpoolDamage {
    /// Regions skipped because they did not hold a valid record.
    pub corrupt_regions: u64,
    /// Bytes in those regions.
    pub skipped_bytes: u64,
    /// Files that could not be read as segments (a directory or a stray
    /// file named like one, a segment whose reads fail), moved aside as
    /// `<name>.bad` so that the rest replays.
    pub quarantined: u64,
}

/// One destination's spool directory.
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    /// The segment files on disk, oldest first; the last one is being
    /// written when `writer` is set.
    segments: Vec<Segment>,
    writer: Option<File>,
    /// Closed segments not fsynced yet.
    unsynced: Vec<File>,
    last_sync: Instant,
    dirty: bool,
    reader: Option<SegmentReader>,
    /// Damage seen while reading.
    pub damage: SpoolDamage,
    /// Bytes of all spools together, with their cap.
    total: Option<(Arc<AtomicU64>, u64)>,
}

/// One segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    seq: u64,
    bytes: u64,
    /// Lines in it: what evicting it drops.
    lines: u64,
    /// Spool time of its first record, epoch ms (0 if unreadable).
    first_ms: u64,
}

struct SegmentReader {
    seq: u64,
    /// The segment file; after damage, the bytes past it, in memory.
    input: Box<dyn Read + Send + Sync>,
    /// Records handed out from this segment and not committed.
    pending: u32,
    done: bool,
    /// A read failed: once its records are committed, the segment is
    /// moved aside instead of deleted.
    failed: bool,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.cws"))
}

fn crc(len: u32, lines: u32, at_ms: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&lines.to_le_bytes());
    h.update(&at_ms.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// One record's bytes.
pub fn encode(batch: &Batch, at_ms: u64) -> Vec<u8> {
    let len = batch.data.len() as u32;
    let mut out = Vec::with_capacity(HEADER + batch.data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&batch.lines.to_le_bytes());
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&crc(len, batch.lines, at_ms, &batch.data).to_le_bytes());
    out.extend_from_slice(&batch.data);
    out
}

/// Decodes the record at the start of `buf`: the batch, its time and its
/// size, or `None` if no valid record starts there.
pub fn decode(buf: &[u8], max_record: u32) -> Option<(Batch, u64, usize)> {
    if buf.len() < HEADER || buf[..4] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().expect("4 bytes"));
    let (len, lines) = (u32_at(4), u32_at(8));
    let at_ms = u64::from_le_bytes(buf[12..20].try_into().expect("8 bytes"));
    let sum = u32_at(20);
    if len > max_record || buf.len() < HEADER + len as usize {
        return None;
    }
    let payload = &buf[HEADER..HEADER + len as usize];
    (crc(len, lines, at_ms, payload) == sum).then(|| {
        (
            Batch {
                data: Bytes::copy_from_slice(payload),
                lines,
            },
            at_ms,
            HEADER + len as usize,
        )
    })
}

impl Spool {
    /// Opens (or creates) a spool directory; segments left by an earlier
    /// run are kept for replay.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        let mut damage = SpoolDamage::default();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".cws")) else {
                continue;
            };
            let path = entry.path();
            // Only the names this spool writes are segments: twenty digits,
            // a regular file. Anything else named like one (a directory, a
            // copy under another name that would repeat a sequence
            // number) would stop replay; it is moved aside and counted.
            let seq = (stem.len() == 20)
                .then(|| stem.parse::<u64>().ok())
                .flatten()
                .filter(|_| entry.file_type().is_ok_and(|t| t.is_file()));
            let Some(seq) = seq else {
                quarantine(&path, &mut damage);
                continue;
            };
            segments.push(Segment {
                seq,
                bytes: entry.metadata()?.len(),
                lines: count_lines(&path, limits.max_record_bytes),
                first_ms: first_record_ms(&path).unwrap_or(0),
            });
        }
        segments.sort_unstable_by_key(|s| s.seq);
        Ok(Spool {
            dir: dir.to_path_buf(),
            limits,
            segments,
            writer: None,
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            dirty: false,
            reader: None,
            damage,
            total: None,
        })
    }

    /// Counts this spool against a cap shared by all spools.
    pub fn share_total(&mut self, total: Arc<AtomicU64>, max_bytes: u64) {
        total.fetch_add(self.bytes(), Relaxed);
        self.total = Some((total, max_bytes));
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Lines on disk, counting a segment's until the segment is deleted.
    pub fn lines(&self) -> u64 {
        self.segments.iter().map(|s| s.lines).sum()
    }

    /// Segment files on disk.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Deletes the oldest segment that replay is not reading, to make
    /// room (the `drop_oldest` policy). Returns the lines it held, or
    /// `None` if there is nothing to evict.
    pub fn evict_oldest(&mut self) -> Result<Option<u64>, SpoolError> {
        let reading = self.reader.as_ref().map(|r| r.seq);
        let Some(i) = self.segments.iter().position(|s| Some(s.seq) != reading) else {
            return Ok(None);
        };
        if i + 1 == self.segments.len() {
            self.writer = None;
        }
        Ok(Some(self.remove_segment(i)?.lines))
    }

    /// Deletes segment `i` and gives its bytes back to the shared total.
    fn remove_segment(&mut self, i: usize) -> Result<Segment, SpoolError> {
        fs::remove_file(segment_path(&self.dir, self.segments[i].seq))?;
        let seg = self.segments.remove(i);
        if let Some((t, _)) = &self.total {
            t.fetch_sub(seg.bytes, Relaxed);
        }
        Ok(seg)
    }

    /// When the oldest data still on disk was spooled (epoch ms): the
    /// first record of the oldest segment.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first_ms).filter(|&t| t > 0)
    }

    /// Seconds since [`Spool::oldest_ms`], 0 when the spool is empty.
    pub fn oldest_age_secs(&self) -> f64 {
        self.oldest_ms().map_or(0.0, |t| {
            (crate::unix_now_ms() as u64).saturating_sub(t) as f64 / 1000.0
        })
    }

    /// Whether anything is waiting for replay.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.bytes == 0)
    }

    /// Appends one batch. `Full` when it would pass `max_bytes`.
    pub fn append(&mut self, batch: &Batch, at_ms: u64) -> Result<(), SpoolError> {
        let record = encode(batch, at_ms);
        let n = record.len() as u64;
        let bytes = self.bytes();
        let total_full = self
            .total
            .as_ref()
            .is_some_and(|(t, max)| t.load(Relaxed) + n > *max);
        if bytes + n > self.limits.max_bytes || total_full {
            return Err(SpoolError::Full(bytes));
        }
        let roll = match (&self.writer, self.segments.last()) {
            (Some(_), Some(last)) => last.bytes + n > self.limits.segment_bytes,
            _ => true,
        };
        if roll {
            self.roll(at_ms)?;
        }
        let file = self.writer.as_mut().expect("rolled above");
        let seg = self.segments.last_mut().expect("rolled above");
        if let Err(e) = file.write_all(&record) {
            // A disk that filled up mid-record leaves a torn tail: cut it
            // off, so the caller keeps the whole batch and replay sees no
            // damage.
            let _ = file.set_len(seg.bytes);
            return Err(e.into());
        }
        seg.bytes += n;
        seg.lines += u64::from(batch.lines);
        if let Some((t, _)) = &self.total {
            t.fetch_add(n, Relaxed);
        }
        self.dirty = true;
        Ok(())
    }

    fn roll(&mut self, at_ms: u64) -> Result<(), SpoolError> {
        self.close_writer();
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, seq))?;
        self.segments.push(Segment {
            seq,
            bytes: 0,
            lines: 0,
            first_ms: at_ms,
        });
        self.writer = Some(file);
        Ok(())
    }

    /// Closes the segment being written; its fsync is left to the next
    /// [`Spool::sync_work`], so no caller waits for the disk here.
    fn close_writer(&mut self) {
        if let Some(file) = self.writer.take() {
            if self.dirty {
                self.unsynced.push(file);
            }
        }
    }

    /// The files to fsync when `fsync_interval` has passed (or `force`),
    /// as handles the caller syncs outside the spool's lock, so that
    /// appends never wait for the disk.
    pub fn sync_work(&mut self, force: bool) -> Result<Vec<File>, SpoolError> {
        if !force && self.last_sync.elapsed() < self.limits.fsync_interval {
            return Ok(Vec::new());
        }
        let mut work = std::mem::take(&mut self.unsynced);
        if self.dirty {
            if let Some(file) = &self.writer {
                work.push(file.try_clone()?);
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(work)
    }

    /// Fsyncs appended data now (at shutdown, and in tests).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        for f in self.sync_work(true)? {
            f.sync_data()?;
        }
        Ok(())
    }

    /// The next spooled batch, oldest first, with its spool time; `None`
    /// when everything has been handed out. Damaged regions are skipped
    /// and counted in [`Spool::damage`].
    pub fn next_batch(&mut self) -> Result<Option<(Batch, u64)>, SpoolError> {
        loop {
            if self.reader.is_none() {
                let Some(seq) = self.segments.first().map(|s| s.seq) else {
                    return Ok(None);
                };
                // Never read the segment being written into: close it so
                // that its records become readable, and start a new one
                // on the next append.
                if self.segments.len() == 1 {
                    self.close_writer();
                }
                let file = match File::open(segment_path(&self.dir, seq)) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(seq, error = %e, "A spool segment cannot be opened; moving it aside.");
                        self.quarantine_segment(0);
                        continue;
                    }
                };
                self.reader = Some(SegmentReader {
                    seq,
                    input: Box::new(BufReader::with_capacity(1 << 20, file)),
                    pending: 0,
                    done: false,
                    failed: false,
                });
            }
            let max = self.limits.max_record_bytes;
            let r = self.reader.as_mut().expect("opened above");
            if !r.done {
                match read_record(&mut r.input, max, &mut self.damage) {
                    Ok(Some(rec)) => {
                        r.pending += 1;
                        return Ok(Some(rec));
                    }
                    Ok(None) => r.done = true,
                    Err(e) => {
                        tracing::error!(seq = r.seq, error = %e, "Reading a spool segment failed; the rest of it is moved aside.");
                        r.done = true;
                        r.failed = true;
                    }
                }
            }
            if r.pending > 0 {
                // Wait for commits before moving past this segment.
                return Ok(None);
            }
            self.finish_segment()?;
        }
    }

    /// Marks the oldest handed-out batch as delivered. A segment is
    /// deleted once all of its batches are.
    pub fn commit(&mut self) -> Result<(), SpoolError> {
        if let Some(r) = self.reader.as_mut() {
            r.pending = r.pending.saturating_sub(1);
            if r.pending == 0 && r.done {
                self.finish_segment()?;
            }
        }
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<(), SpoolError> {
        if let Some(r) = self.reader.take() {
            if let Some(i) = self.segments.iter().position(|s| s.seq == r.seq) {
                if r.failed {
                    self.quarantine_segment(i);
                } else {
                    self.remove_segment(i)?;
                }
            }
        }
        Ok(())
    }

    /// Moves segment `i` aside and forgets it; its bytes no longer count
    /// against the caps.
    fn quarantine_segment(&mut self, i: usize) {
        let seg = self.segments.remove(i);
        quarantine(&segment_path(&self.dir, seg.seq), &mut self.damage);
        if let Some((t, _)) = &self.total {
            t.fetch_sub(seg.bytes, Relaxed);
        }
    }
}

/// Renames `path` to `<path>.bad`, counted; if even that fails the entry
/// is left in place, and it is no segment either way.
fn quarantine(path: &Path, damage: &mut SpoolDamage) {
    damage.quarantined += 1;
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    match fs::rename(path, &bad) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "Moved an unreadable spool entry aside as .bad.")
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "An unreadable spool entry could not be moved aside.")
        }
    }
}

/// Lines in a segment, from its record headers (0 past any damage).
fn count_lines(path: &Path, max: u32) -> u64 {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut n = 0u64;
    let mut header = [0u8; HEADER];
    while f.read_exact(&mut header).is_ok() && header[..4] == MAGIC {
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        if len > max || f.seek(SeekFrom::Current(i64::from(len))).is_err() {
            break;
        }
        n += u64::from(u32::from_le_bytes(
            header[8..12].try_into().expect("4 bytes"),
        ));
    }
    n
}

/// The spool time in a segment's first record header.
fn first_record_ms(path: &Path) -> Option<u64> {
    let mut header = [0u8; HEADER];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    (header[..4] == MAGIC).then(|| u64::from_le_bytes(header[12..20].try_into().expect("8 bytes")))
}

/// Reads the next valid record, skipping (and counting) damage.
fn read_record(
    input: &mut Box<dyn Read + Send + Sync>,
    max: u32,
    damage: &mut SpoolDamage,
) -> Result<Option<(Batch, u64)>, SpoolError> {
    let mut header = [0u8; HEADER];
    match read_full(input, &mut header)? {
        0 => return Ok(None),
        n if n < HEADER => {
            damage.corrupt_regions += 1;
            damage.skipped_bytes += n as u64;
            return Ok(None);
        }
        _ => {}
    }
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if header[..4] == MAGIC && len <= max {
        let mut buf = header.to_vec();
        buf.resize(HEADER + len as usize, 0);
        let got = read_full(input, &mut buf[HEADER..])?;
        if got == len as usize {
            if let Some((batch, at, _)) = decode(&buf, max) {
                return Ok(Some((batch, at)));
            }
        }
        buf.truncate(HEADER + got);
        return resync(input, buf, max, damage);
    }
    resync(input, header.to_vec(), max, damage)
}

/// After damage: reads the rest of the segment and resumes at the first
/// offset past the bad start where a valid record begins.
fn resync(
    input: &mut Box<dyn Read + Send + Sync>,
    mut buf: Vec<u8>,
    max: u32,
    damage: &mut SpoolDamage,
) -> Result<Option<(Batch, u64)>, SpoolError> {
    input.read_to_end(&mut buf)?;
    damage.corrupt_regions += 1;
    let start =
        (1..buf.len()).find(|&i| buf[i..].starts_with(&MAGIC) && decode(&buf[i..], max).is_some());
    let Some(i) = start else {
        damage.skipped_bytes += buf.len() as u64;
        return Ok(None);
    };
    damage.skipped_bytes += i as u64;
    // The rest of the segment is in memory now; keep reading from there.
    let (batch, at, used) = decode(&buf[i..], max).expect("checked above");
    let rest = buf.split_off(i + used);
    *input = Box::new(io::Cursor::new(rest));
    Ok(Some((batch, at)))
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Another spool for the same directory (after a reload) counts
        // these bytes again.
        let n = self.bytes();
        if let Some((t, _)) = &self.total {
            t.fetch_sub(n, Relaxed);
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("bytes", &self.bytes())
            .field("damage", &self.damage)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
