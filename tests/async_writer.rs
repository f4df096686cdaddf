//! The async writer and consumer (the `tokio` feature): a failed flush reaches every awaiting
//! future as an error; the watch publishes the durable position; an async consumer resumes
//! after what it committed and loses nothing to a cancelled `next()`.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use applog::tokio::{AsyncConsumer, AsyncWriter};
use applog::{Error, Options};
use common::serial;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_failed_flush_fails_every_waiting_future() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let log = AsyncWriter::open(d.path(), Options::default())
            .await
            .unwrap();
        let mut watch = log.watch_durable();
        let first = log.append_durable(b"kept").await.unwrap();
        assert_eq!(first, 0);
        watch.wait_for(|d| d.durable_seq == 1).await.unwrap();

        log.shared()
            .set_sync_hook(|_| Err(std::io::Error::other("injected write-back error")));
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    // Once another task's flush has failed, the writer is poisoned and the
                    // append itself fails: that is an error reaching this task too.
                    let seq = log.append(format!("lost {i}").as_bytes())?;
                    log.durable(seq).await
                })
            })
            .collect();
        for w in waiters {
            let r = w.await.unwrap();
            assert!(
                matches!(r, Err(Error::Io { .. } | Error::Poisoned { .. })),
                "{r:?}"
            );
        }
        let d = *watch.wait_for(|d| d.poisoned).await.unwrap();
        assert_eq!(
            d.durable_seq, 1,
            "nothing after the failure is claimed durable"
        );
        // Later calls fail at once with the poison.
        let r = log.durable(0).await;
        assert!(r.is_ok(), "record 0 was durable before: {r:?}");
        let r = log.append_durable(b"after").await;
        assert!(matches!(r, Err(Error::Poisoned { .. })), "{r:?}");
    });
    // The hook fails a flush whose msyncs (and synced marks) did succeed: the marks may
    // cover the later records, the writer no longer promises them.
    assert!(applog::durable_seq(d.path()).unwrap() >= 1);
}

#[test]
fn durable_rejects_a_seq_not_appended() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let log = AsyncWriter::open(d.path(), Options::default())
            .await
            .unwrap();
        let r = log.durable(0).await;
        assert!(
            matches!(
                r,
                Err(Error::SeqNotAppended {
                    seq: 0,
                    next_seq: 0
                })
            ),
            "{r:?}"
        );
        log.append(b"a").unwrap();
        log.sync().await.unwrap();
        assert_eq!(log.durable_seq(), 1);
        assert_eq!(applog::tokio::durable_seq(d.path()).await.unwrap(), 1);
        log.close().await.unwrap();
    });
    // The lock is released with the last handle.
    assert!(!applog::is_locked(d.path()).unwrap());
}

#[test]
fn an_async_consumer_resumes_after_its_commit_and_loses_nothing_to_cancelling() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let log = AsyncWriter::open(d.path(), Options::default())
            .await
            .unwrap();
        for i in 0..5u8 {
            log.append(&[i]).unwrap();
        }
        let mut c = AsyncConsumer::open(d.path(), "indexer").await.unwrap();
        for i in 0..3u8 {
            assert_eq!(c.next().await.unwrap().data(), &[i]);
        }
        c.commit().unwrap();
        c.sync().await.unwrap();
        assert_eq!(c.committed(), 3);
        drop(c);

        let mut c = AsyncConsumer::open(d.path(), "indexer").await.unwrap();
        assert_eq!(c.position(), 3);
        assert_eq!(c.try_next().unwrap().unwrap().seq(), 3);
        assert_eq!(c.next().await.unwrap().seq(), 4);
        // Nothing there: `try_next` says so at once and leaves nothing waiting.
        assert!(c.try_next().unwrap().is_none());
        assert_eq!(applog::tokio::waiting_tasks(), 0);
        // Nothing there: a cancelled wait, then the next record still arrives.
        assert!(tokio::time::timeout(Duration::from_millis(20), c.next())
            .await
            .is_err());
        assert_eq!(applog::tokio::waiting_tasks(), 0);
        let appender = {
            let log = log.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                log.append(b"late").unwrap()
            })
        };
        let r = c.next().await.unwrap();
        assert_eq!((r.seq(), r.data()), (5, &b"late"[..]));
        assert_eq!(appender.await.unwrap(), 5);
        c.commit_durable().await.unwrap();
        assert_eq!(c.committed(), 6);
    });
}
