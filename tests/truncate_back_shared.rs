//! Cutting the log's end through the shared and async writers: durability waits and the
//! durable seq stay true across the cut.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use applog::{Options, SharedWriter};

fn data(dir: &std::path::Path) -> Vec<Vec<u8>> {
    common::read_all(dir).into_iter().map(|(_, d)| d).collect()
}

#[test]
fn shared_writer_cut_lowers_the_durable_seq_so_new_records_are_not_taken_for_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(tmp.path(), Options::new().segment_pages(2)).unwrap();
    for i in 0..50u32 {
        log.append(&i.to_le_bytes()).unwrap();
    }
    log.sync().unwrap();
    assert_eq!(log.durable_seq(), 50);
    log.truncate_back(20).unwrap();
    assert_eq!((log.next_seq(), log.durable_seq()), (20, 20));
    // Seq 20 again, a new record: not durable until a flush covers it.
    assert_eq!(log.append(b"new").unwrap(), 20);
    assert_eq!(log.durable_seq(), 20);
    log.wait_durable(20).unwrap();
    assert_eq!(log.durable_seq(), 21);
    assert_eq!(applog::durable_seq(tmp.path()).unwrap(), 21);
    log.close().unwrap();
    let all = data(tmp.path());
    assert_eq!(all.len(), 21);
    assert_eq!(all[20], b"new");
}

#[test]
fn shared_writer_cut_while_other_threads_append_and_wait_loses_no_record_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(tmp.path(), Options::new().segment_pages(2)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (log, stop) = (log.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let rec = format!("t{t}");
                    let seq = log.append_durable(rec.as_bytes()).unwrap();
                    acked.push(seq);
                }
                acked
            })
        })
        .collect();
    while log.next_seq() < 200 {
        std::thread::yield_now();
    }
    log.truncate_back(100).unwrap();
    while log.next_seq() < 200 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    log.sync().unwrap();
    let n = log.next_seq();
    drop(log);
    // Every seq is there once, the log is whole, and every record is one a thread wrote.
    let all = data(tmp.path());
    assert_eq!(all.len() as u64, n);
    assert!(all.iter().all(|d| d.starts_with(b"t")));
    assert!(applog::verify(tmp.path()).unwrap().is_clean());
}

#[cfg(feature = "tokio")]
mod async_writer {
    use super::data;
    use applog::tokio::AsyncWriter;
    use applog::Options;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writer_cut_publishes_the_lower_durable_seq_and_counts_the_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AsyncWriter::open(tmp.path(), Options::new().segment_pages(2))
            .await
            .unwrap();
        for i in 0..30u32 {
            log.append(&i.to_le_bytes()).unwrap();
        }
        log.sync().await.unwrap();
        let mut watch = log.watch_durable();
        assert_eq!(watch.borrow_and_update().rewinds, 0);
        log.truncate_back(10).await.unwrap();
        let d = *watch.borrow_and_update();
        assert_eq!((d.durable_seq, d.rewinds, d.poisoned), (10, 1, false));
        assert_eq!(log.durable_seq(), 10);
        // The new record at seq 10 is durable only once a flush covers it.
        assert_eq!(log.append(b"new").unwrap(), 10);
        assert_eq!(log.durable_seq(), 10);
        log.durable(10).await.unwrap();
        assert_eq!(log.durable_seq(), 11);
        // Out of range: nothing changes.
        assert!(matches!(
            log.truncate_back(12).await,
            Err(applog::Error::SeqNotAppended {
                seq: 12,
                next_seq: 11
            })
        ));
        log.close().await.unwrap();
        assert_eq!(data(tmp.path()).len(), 11);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_durable_futures_pending_at_a_cut_resolve_ok() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AsyncWriter::open(tmp.path(), Options::new().segment_pages(2))
            .await
            .unwrap();
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let mut waits = Vec::new();
        for i in 0..200u32 {
            let seq = log.append(&i.to_le_bytes()).unwrap();
            let (log, ready_tx) = (log.clone(), ready_tx.clone());
            waits.push(tokio::spawn(async move {
                // On this one-thread runtime, the send and the future's first poll run
                // without a yield between them: once the test has every signal, every
                // future has asked for its record before the cut.
                ready_tx.send(()).unwrap();
                log.durable(seq).await
            }));
        }
        for _ in 0..200 {
            ready.recv().await.unwrap();
        }
        log.truncate_back(50).await.unwrap();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        assert_eq!(log.next_seq(), 50);
        log.close().await.unwrap();
        assert_eq!(data(tmp.path()).len(), 50);
    }
}
