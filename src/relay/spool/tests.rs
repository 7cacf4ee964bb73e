use super::*;
use proptest::prelude::*;

fn batch(i: u32) -> Batch {
    let data: String = (0..=i % 7)
        .map(|k| format!("m.{i}.{k} {k} 1700000000\n"))
        .collect();
    Batch {
        lines: i % 7 + 1,
        data: Bytes::from(data),
    }
}

fn small() -> SpoolLimits {
    SpoolLimits {
        segment_bytes: 4096,
        fsync_interval: Duration::ZERO,
        ..SpoolLimits::default()
    }
}

fn drain(s: &mut Spool) -> Vec<Batch> {
    let mut out = Vec::new();
    while let Some((b, _)) = s.next_batch().unwrap() {
        s.commit().unwrap();
        out.push(b);
    }
    out
}

#[test]
fn replays_in_order_across_segments_and_reopening_and_frees_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<Batch> = (0..300).map(batch).collect();
    {
        let mut s = Spool::open(dir.path(), small()).unwrap();
        for b in &want[..200] {
            s.append(b, 1).unwrap();
        }
        assert!(s.segments() > 3, "rolled: {}", s.segments());
    }
    // A new run finds the old data first, then its own.
    let mut s = Spool::open(dir.path(), small()).unwrap();
    for b in &want[200..] {
        s.append(b, 2).unwrap();
    }
    assert_eq!(s.oldest_ms(), Some(1), "the first run's data is the oldest");
    assert_eq!(drain(&mut s), want);
    assert_eq!(s.oldest_ms(), None);
    assert!(s.is_empty());
    assert_eq!(s.segments(), 0);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "segments deleted"
    );
    assert_eq!(s.damage, SpoolDamage::default());
}

/// A directory named like a segment, a stray copy with a repeated
/// sequence number and a segment whose reads fail are moved aside and
/// counted; everything else replays (issue #11: one bad entry left a
/// million lines on disk).
#[test]
fn unreadable_entries_are_moved_aside_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<Batch> = (0..200).map(batch).collect();
    {
        let mut s = Spool::open(dir.path(), small()).unwrap();
        for b in &want {
            s.append(b, 1).unwrap();
        }
        assert!(s.segments() > 3);
    }
    let first = segment_path(dir.path(), 1);
    fs::copy(&first, dir.path().join("1.cws")).unwrap();
    fs::create_dir(segment_path(dir.path(), 2_000)).unwrap();
    let mut s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.damage.quarantined, 2);
    assert!(dir.path().join("1.cws.bad").exists());
    assert!(dir.path().join(format!("{:020}.cws.bad", 2_000)).is_dir());
    assert_eq!(drain(&mut s), want);
    assert!(s.is_empty());

    // A segment that cannot be opened any more is skipped too.
    {
        let mut s = Spool::open(dir.path(), small()).unwrap();
        for b in &want {
            s.append(b, 1).unwrap();
        }
    }
    let mut s = Spool::open(dir.path(), small()).unwrap();
    let seqs: Vec<u64> = s.segments.iter().map(|g| g.seq).collect();
    let lost = seqs[1];
    fs::remove_file(segment_path(dir.path(), lost)).unwrap();
    fs::create_dir(segment_path(dir.path(), lost)).unwrap();
    let got = drain(&mut s);
    assert!(
        got.len() < want.len() && got.len() > want.len() / 2,
        "{}",
        got.len()
    );
    assert_eq!(s.damage.quarantined, 1);
    assert!(s.is_empty());
}

#[test]
fn a_segment_stays_until_every_batch_in_it_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small()).unwrap();
    s.append(&batch(1), 1).unwrap();
    s.append(&batch(2), 1).unwrap();
    s.next_batch().unwrap().unwrap();
    s.next_batch().unwrap().unwrap();
    assert!(s.next_batch().unwrap().is_none(), "both handed out");
    s.commit().unwrap();
    assert_eq!(s.segments(), 1, "one batch still in flight");
    s.commit().unwrap();
    assert_eq!(s.segments(), 0);
}

#[test]
fn fsyncs_are_handed_out_once_per_interval_and_never_done_by_append() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SpoolLimits {
        fsync_interval: Duration::from_secs(3600),
        ..small()
    };
    let mut s = Spool::open(dir.path(), limits).unwrap();
    for i in 0..200 {
        s.append(&batch(i), 1).unwrap();
    }
    assert!(s.segments() > 2);
    assert!(
        s.sync_work(false).unwrap().is_empty(),
        "not due for an hour"
    );
    let files = s.sync_work(true).unwrap();
    assert_eq!(
        files.len(),
        s.segments(),
        "every segment written since the last sync"
    );
    assert!(s.sync_work(true).unwrap().is_empty(), "nothing new to sync");
    s.append(&batch(1), 1).unwrap();
    assert_eq!(s.sync_work(true).unwrap().len(), 1);
}

#[test]
fn evicting_drops_the_oldest_segment_and_reports_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small()).unwrap();
    let want: Vec<Batch> = (0..200).map(batch).collect();
    for b in &want {
        s.append(b, 1).unwrap();
    }
    let before = (s.segments(), s.bytes(), s.lines());
    let lines = s.evict_oldest().unwrap().unwrap();
    assert!(lines > 0);
    assert_eq!(s.segments(), before.0 - 1);
    assert!(s.bytes() < before.1);
    assert_eq!(s.lines(), before.2 - lines);
    // What is left is the newer part, in order.
    let got = drain(&mut s);
    assert_eq!(got[..], want[want.len() - got.len()..]);
    // A reopened spool counts lines from the headers.
    for b in &want {
        s.append(b, 1).unwrap();
    }
    let total = s.lines();
    drop(s);
    assert_eq!(Spool::open(dir.path(), small()).unwrap().lines(), total);
}

#[test]
fn spools_share_a_total_cap() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let total = Arc::new(AtomicU64::new(0));
    let mut one = Spool::open(a.path(), small()).unwrap();
    let mut two = Spool::open(b.path(), small()).unwrap();
    one.share_total(total.clone(), 3000);
    two.share_total(total.clone(), 3000);
    while one.append(&batch(6), 1).is_ok() {}
    assert!(one.bytes() <= 3000 && one.bytes() > 2000);
    assert!(
        matches!(two.append(&batch(6), 1), Err(SpoolError::Full(0))),
        "the first one took the room"
    );
    assert_eq!(total.load(Relaxed), one.bytes());
    drain(&mut one);
    assert_eq!(total.load(Relaxed), 0, "replayed bytes are given back");
    two.append(&batch(6), 1).unwrap();
    drop(two);
    assert_eq!(
        total.load(Relaxed),
        0,
        "a dropped spool gives its bytes back"
    );
}

#[test]
fn full_is_an_error_the_caller_handles() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SpoolLimits {
        max_bytes: 1000,
        ..small()
    };
    let mut s = Spool::open(dir.path(), limits).unwrap();
    let mut stored = 0;
    loop {
        match s.append(&batch(3), 1) {
            Ok(()) => stored += 1,
            Err(SpoolError::Full(n)) => {
                assert!(n <= 1000);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(drain(&mut s).len(), stored);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A torn tail or a flipped byte anywhere loses at most the
    /// records it touches: every other record comes back, in order,
    /// and nothing panics.
    #[test]
    fn damage_costs_only_the_records_it_touches(
        n in 1u32..40,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        torn in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let want: Vec<Batch> = (0..n).map(batch).collect();
        let mut offsets = Vec::new();
        {
            let mut s = Spool::open(dir.path(), SpoolLimits { fsync_interval: Duration::ZERO, ..SpoolLimits::default() }).unwrap();
            let mut at = 0usize;
            for b in &want {
                offsets.push(at);
                at += HEADER + b.data.len();
                s.append(b, 7).unwrap();
            }
            offsets.push(at);
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let hit = if torn {
            let at = cut.index(bytes.len());
            bytes.truncate(at);
            at
        } else {
            let at = flip.index(bytes.len());
            bytes[at] ^= 0x5a;
            at
        };
        fs::write(&path, &bytes).unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let got = drain(&mut s);
        // The damaged record is the one whose span holds `hit`.
        let damaged = offsets.windows(2).position(|w| w[0] <= hit && hit < w[1]).unwrap();
        let expect: Vec<Batch> = if torn {
            want[..damaged].to_vec()
        } else {
            want.iter().enumerate().filter(|(i, _)| *i != damaged).map(|(_, b)| b.clone()).collect()
        };
        prop_assert_eq!(got, expect);
        prop_assert!(s.damage.corrupt_regions >= 1 || (torn && hit == offsets[damaged]));
    }
}
