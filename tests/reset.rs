//! `Writer::reset`: starting the log again at a seq (after a Raft snapshot was installed).
//! Past the end, the log becomes empty and continues at that seq; inside it, the records
//! before it go segment by segment; readers of removed segments learn it.

mod common;

use std::path::Path;

use common::read_all;

use applog::{Error, Options, Reader, SharedWriter, Writer};

fn opts() -> Options {
    Options::new().segment_pages(1)
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".seg")
        })
        .count()
}

fn log_with(dir: &Path, n: u64) -> Writer {
    let mut w = Writer::open(dir, opts()).unwrap();
    for i in 0..n {
        w.append(format!("record {i:04}").repeat(20).as_bytes())
            .unwrap();
    }
    w
}

#[test]
fn reset_past_the_end_empties_the_log_and_appends_continue_at_the_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    assert!(segment_files(dir) > 3);
    w.reset(5000).unwrap();
    assert_eq!((w.first_seq(), w.next_seq()), (5000, 5000));
    assert_eq!(segment_files(dir), 1);
    assert!(read_all(dir).is_empty());
    assert_eq!(w.append(b"after").unwrap(), 5000);
    drop(w);
    assert_eq!(read_all(dir), vec![(5000, b"after".to_vec())]);
    let mut r = Reader::open(dir).unwrap();
    assert!(matches!(
        r.seek(99),
        Err(Error::SeqBeforeStart {
            first_seq: 5000,
            ..
        })
    ));
    let v = applog::verify(dir).unwrap();
    assert!(v.is_clean() && v.removed_by_reset.is_empty(), "{v:?}");
    // Reopened: the same log.
    let mut w = Writer::open(dir, opts()).unwrap();
    assert_eq!((w.first_seq(), w.next_seq()), (5000, 5001));
    assert_eq!(w.append(b"more").unwrap(), 5001);
}

#[test]
fn reset_inside_the_log_removes_the_segments_wholly_before_the_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let before = segment_files(dir);
    w.reset(60).unwrap();
    assert_eq!(w.next_seq(), 100);
    assert!(
        w.first_seq() <= 60 && w.first_seq() > 0,
        "{}",
        w.first_seq()
    );
    assert!(segment_files(dir) < before);
    let all = read_all(dir);
    assert_eq!(all.first().unwrap().0, w.first_seq());
    assert_eq!(all.last().unwrap().0, 99);
    // At the end exactly: everything before the active segment goes; appends go on.
    w.reset(100).unwrap();
    assert_eq!(w.append(b"x").unwrap(), 100);
    // Below the start: nothing to do.
    let first = w.first_seq();
    w.reset(0).unwrap();
    assert_eq!(w.first_seq(), first);
}

#[test]
fn reset_of_an_empty_log_starts_it_at_the_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Writer::open(dir, opts()).unwrap();
    w.reset(7).unwrap();
    assert_eq!(w.append(b"seven").unwrap(), 7);
    w.reset(7).unwrap(); // inside now: changes nothing
    assert_eq!(w.next_seq(), 8);
    drop(w);
    assert_eq!(read_all(dir), vec![(7, b"seven".to_vec())]);
}

#[test]
fn a_reader_in_a_segment_removed_by_a_reset_is_rewound_and_can_seek_to_the_new_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 30);
    let mut r = Reader::open(dir).unwrap();
    assert_eq!(r.next().unwrap().map(|x| x.seq()), Some(0));
    let mut at_end = Reader::open(dir).unwrap();
    while at_end.next().unwrap().is_some() {}
    w.reset(1000).unwrap();
    w.append(b"new").unwrap();
    assert!(
        matches!(r.next(), Err(Error::Rewound { .. })),
        "reader in an old segment"
    );
    assert!(
        matches!(at_end.next(), Err(Error::Rewound { .. })),
        "reader at the old end"
    );
    r.seek(1000).unwrap();
    assert_eq!(
        r.next().unwrap().map(|x| x.data().to_vec()),
        Some(b"new".to_vec())
    );
}

#[test]
fn shared_writer_reset_makes_new_records_wait_for_their_own_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(tmp.path(), opts()).unwrap();
    for i in 0..10u32 {
        log.append(&i.to_le_bytes()).unwrap();
    }
    log.reset(100).unwrap();
    assert_eq!((log.next_seq(), log.durable_seq()), (100, 100));
    assert_eq!(log.append(b"a").unwrap(), 100);
    assert_eq!(log.durable_seq(), 100);
    log.wait_durable(100).unwrap();
    assert_eq!(applog::durable_seq(tmp.path()).unwrap(), 101);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writer_reset_publishes_the_new_durable_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let log = applog::tokio::AsyncWriter::open(tmp.path(), opts())
        .await
        .unwrap();
    log.append(b"old").unwrap();
    log.reset(42).await.unwrap();
    let d = *log.watch_durable().borrow();
    assert_eq!((d.durable_seq, d.rewinds), (42, 1));
    assert_eq!(log.append_durable(b"new").await.unwrap(), 42);
    assert_eq!(log.durable_seq(), 43);
}

#[test]
fn a_reset_segment_refuses_a_flag_it_does_not_know() {
    // Header flags are covered by the header CRC; an unknown one is refused, not ignored.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Writer::open(dir, opts()).unwrap();
    w.reset(10).unwrap();
    drop(w);
    let seg = dir.join(format!("{:020}.seg", 10));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[20] |= 2;
    let crc = crc32fast_hash(&bytes[0..40]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let err = Writer::open(dir, opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("flags") && msg.contains("00000000000000000010.seg"),
        "{msg}"
    );
}

fn crc32fast_hash(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(b);
    h.finalize()
}

#[test]
fn a_named_consumer_before_a_reset_moves_to_the_new_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 20);
    let mut c = applog::Consumer::open(dir, "indexer").unwrap();
    c.try_next().unwrap();
    c.commit().unwrap();
    drop(c);
    w.reset(500).unwrap();
    w.append(b"first").unwrap();
    let all = applog::consumers(dir).unwrap();
    assert_eq!(all[0].next_seq, 500);
    let mut c = applog::Consumer::open(dir, "indexer").unwrap();
    assert_eq!(c.try_next().unwrap().map(|r| r.seq()), Some(500));
}
