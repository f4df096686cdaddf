//! Round trips through the public API: what is appended is read back, byte for byte, in seq
//! order, across segment rollovers; `seek` lands on any seq; segment files grow exactly one
//! page at a time (to the smallest page multiple that holds the data).

mod common;

use applog::{Error, Options, Reader, SyncPolicy, Writer};
use common::*;
use proptest::prelude::*;

const SEG_PAGES: u32 = 4;

fn reservation() -> u64 {
    page() * u64::from(SEG_PAGES)
}

/// Lengths that matter: empty, one byte, around a page, and up to the segment limit.
fn interesting_len() -> impl Strategy<Value = usize> {
    let p = page() as usize;
    let max = (reservation() - HEADER - 16) as usize;
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(p - 1),
        Just(p),
        Just(p + 1),
        Just(max),
        Just(max - 1),
        0usize..64,
        0usize..=max,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn appended_records_read_back_and_seek_lands(lens in proptest::collection::vec(interesting_len(), 1..60), seek_frac in 0.0f64..1.0, batch in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let opts = Options::new().segment_pages(SEG_PAGES);
        let mut w = Writer::open(d.path(), opts.clone()).unwrap();
        let payloads: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| payload(i as u64, l)).collect();
        if batch {
            let (a, b) = payloads.split_at(payloads.len() / 2);
            prop_assert_eq!(w.append_batch(a).unwrap(), 0..a.len() as u64);
            prop_assert_eq!(w.append_batch(b).unwrap(), a.len() as u64..payloads.len() as u64);
        } else {
            for (i, p) in payloads.iter().enumerate() {
                prop_assert_eq!(w.append(p).unwrap(), i as u64);
            }
        }
        prop_assert_eq!(w.next_seq(), payloads.len() as u64);

        // Read back in another reader while the writer is still open.
        let got = read_all(d.path());
        prop_assert_eq!(got.len(), payloads.len());
        for (i, (seq, data)) in got.iter().enumerate() {
            prop_assert_eq!(*seq, i as u64);
            prop_assert_eq!(data, &payloads[i]);
        }

        // Records land where the documented format puts them: one segment per rollover, and a
        // batch in one segment when it fits in one.
        let placed = if batch {
            place_batches(&lens, &[lens.len() / 2, lens.len()], reservation())
        } else {
            place(&lens, reservation())
        };
        let segments: std::collections::BTreeSet<u64> = placed.iter().map(|p| p.segment).collect();
        let files: Vec<_> = std::fs::read_dir(d.path()).unwrap().filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".seg").map(|s| s.parse::<u64>().unwrap())
        }).collect();
        prop_assert_eq!(files.len(), segments.len());
        for s in &segments { prop_assert!(files.contains(s), "segment {} missing", s); }

        // Seek to any seq.
        let target = ((payloads.len() as f64) * seek_frac) as u64;
        let mut r = Reader::open(d.path()).unwrap();
        r.seek(target).unwrap();
        let rec = r.next().unwrap().unwrap();
        prop_assert_eq!(rec.seq(), target);
        prop_assert_eq!(rec.data(), &payloads[target as usize][..]);

        // Reopen: the log is intact and continues at the right seq.
        drop(w);
        let mut w = Writer::open(d.path(), opts).unwrap();
        prop_assert_eq!(w.next_seq(), payloads.len() as u64);
        prop_assert_eq!(w.append(b"after").unwrap(), payloads.len() as u64);
        let report = applog::verify(d.path()).unwrap();
        prop_assert!(report.is_clean(), "{:?}", report);
        prop_assert_eq!(report.records, payloads.len() as u64 + 1);
    }
}

#[test]
fn segment_grows_one_page_at_a_time() {
    let d = tempfile::tempdir().unwrap();
    // The exact rule, without a pretoucher growing ahead (tests/pretouch.rs has one).
    let opts = Options::new().segment_pages(SEG_PAGES).pretouch(0);
    let mut w = Writer::open(d.path(), opts).unwrap();
    let seg0 = seg_path(d.path(), 0);
    // A fresh segment holds only its header: one page.
    assert_eq!(std::fs::metadata(&seg0).unwrap().len(), page());
    let lens: Vec<usize> = (0..400)
        .map(|i| [0, 1, 100, 500, 4000, 8, 4096, 17][i % 8])
        .collect();
    let placed = place(&lens, reservation());
    for (i, p) in placed.iter().enumerate() {
        assert_eq!(w.append(&payload(i as u64, p.len)).unwrap(), i as u64);
        let end = p.offset + frame_len(p.len);
        let size = std::fs::metadata(seg_path(d.path(), p.segment))
            .unwrap()
            .len();
        assert_eq!(
            size,
            end.div_ceil(page()) * page(),
            "after record {i} (segment {}, end {end})",
            p.segment
        );
        if i > 0 && placed[i - 1].segment != p.segment {
            // The sealed segment ends with an 8-byte seal frame (when there was room for it),
            // and was not grown further.
            let prev = &placed[i - 1];
            let prev_end = prev.offset + frame_len(prev.len);
            let sealed_end = (prev_end + 8).min(reservation());
            let prev_size = std::fs::metadata(seg_path(d.path(), prev.segment))
                .unwrap()
                .len();
            assert_eq!(prev_size, sealed_end.div_ceil(page()) * page());
        }
    }
}

#[test]
fn record_too_large_names_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(2)).unwrap();
    let max = (2 * page() - HEADER - 16) as usize;
    assert_eq!(w.max_record_len(), max as u64);
    let err = w.append(&vec![7u8; max + 1]).unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { len, max: m } if len == max + 1 && m == max as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains(&max.to_string()), "{err}");
    // Nothing was appended; a record of exactly the limit fits.
    assert_eq!(w.next_seq(), 0);
    assert_eq!(w.append(&vec![7u8; max]).unwrap(), 0);
    let big = vec![vec![1u8; 10], vec![2u8; max + 1]];
    assert!(matches!(
        w.append_batch(&big),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(
        w.next_seq(),
        1,
        "a batch with a record too large appends nothing"
    );
    assert_eq!(read_all(d.path()).len(), 1);
}

#[test]
fn invalid_options_are_refused() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        Writer::open(d.path(), Options::new().segment_pages(0)),
        Err(Error::InvalidOptions(_))
    ));
    assert!(matches!(
        Writer::open(d.path(), Options::new().segment_pages(u32::MAX)),
        Err(Error::InvalidOptions(_))
    ));
    assert!(
        std::fs::read_dir(d.path()).unwrap().next().is_none(),
        "nothing created"
    );
}

#[test]
fn sync_policies_move_the_synced_mark() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path().join("a"), Options::new().sync(SyncPolicy::Always)).unwrap();
    w.append(b"one").unwrap();
    let r = applog::verify(d.path().join("a")).unwrap();
    assert_eq!(
        r.segments[0].synced_mark, r.segments[0].data_end,
        "Always syncs every append"
    );
    w.append_batch(&[&b"two"[..], &b"three"[..]]).unwrap();
    let r = applog::verify(d.path().join("a")).unwrap();
    assert_eq!(r.segments[0].synced_mark, r.segments[0].data_end);

    let mut w = Writer::open(
        d.path().join("b"),
        Options::new().sync(SyncPolicy::EveryBytes(1000)),
    )
    .unwrap();
    w.append(&[0u8; 100]).unwrap();
    let r = applog::verify(d.path().join("b")).unwrap();
    assert_eq!(
        r.segments[0].synced_mark, 0,
        "below the threshold: not synced yet"
    );
    for _ in 0..7 {
        w.append(&[0u8; 100]).unwrap();
    }
    let r = applog::verify(d.path().join("b")).unwrap();
    assert_eq!(
        r.segments[0].synced_mark, 0,
        "8 frames of 112 bytes: 896 < 1000"
    );
    w.append(&[0u8; 100]).unwrap();
    let r = applog::verify(d.path().join("b")).unwrap();
    assert_eq!(
        r.segments[0].synced_mark, r.segments[0].data_end,
        "1008 bytes of frames: synced"
    );

    let mut w = Writer::open(d.path().join("c"), Options::new()).unwrap();
    w.append(b"x").unwrap();
    assert_eq!(
        applog::verify(d.path().join("c")).unwrap().segments[0].synced_mark,
        0,
        "Manual: no sync until asked"
    );
    w.sync().unwrap();
    let r = applog::verify(d.path().join("c")).unwrap();
    assert_eq!(r.segments[0].synced_mark, r.segments[0].data_end);
}

#[test]
fn grow_pages_grows_in_bigger_steps_and_changes_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new().segment_pages(64).grow_pages(8).pretouch(0);
    let mut w = Writer::open(d.path(), opts.clone()).unwrap();
    let seg0 = seg_path(d.path(), 0);
    let lens: Vec<usize> = (0..300).map(|i| [10, 300, 5000][i % 3]).collect();
    let placed = place(&lens, page() * 64);
    let mut steps = std::collections::BTreeSet::new();
    for (i, p) in placed.iter().enumerate() {
        w.append(&payload(i as u64, p.len)).unwrap();
        if p.segment != 0 {
            break;
        }
        let end = p.offset + frame_len(p.len);
        let size = std::fs::metadata(&seg0).unwrap().len();
        // Always ahead of the data by less than the step, never past the reservation.
        assert!(
            size >= end && size <= (end.div_ceil(page()) + 7) * page() && size <= 64 * page(),
            "size {size} end {end}"
        );
        steps.insert(size);
    }
    assert!(steps.len() < 64 / 4, "grew in steps of 8 pages: {steps:?}");
    drop(w);
    let got = read_all(d.path());
    assert_eq!(
        got.len(),
        placed.iter().take_while(|p| p.segment == 0).count() + 1
    );
    let report = applog::verify(d.path()).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    // Reopening recovers across the zero pages ahead of the data.
    let mut w = Writer::open(d.path(), opts).unwrap();
    assert_eq!(w.next_seq(), got.len() as u64);
    w.append(b"x").unwrap();
    assert!(matches!(
        Writer::open(
            tempfile::tempdir().unwrap().path(),
            Options::new().grow_pages(0)
        ),
        Err(Error::InvalidOptions(_))
    ));
}
