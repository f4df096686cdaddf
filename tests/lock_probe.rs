//! `applog::is_locked` tells whether a writer holds a log without disturbing one that opens it.
//!
//! In a file of its own: other test files spawn child processes, and between `fork` and
//! `exec` a child holds a copy of every open descriptor, lock files included, so a writer
//! reopened in that window would see `Locked` for a moment (see `Writer::open`).

use applog::{Options, Writer};

#[test]
fn is_locked_tells_without_disturbing_a_writer() {
    let d = tempfile::tempdir().unwrap();
    assert!(
        !applog::is_locked(d.path()).unwrap(),
        "no lock file: not locked"
    );
    drop(Writer::open(d.path(), Options::new()).unwrap());
    assert!(!applog::is_locked(d.path()).unwrap());
    // Probing in a loop never makes a writer's open fail.
    let dir = d.path().to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                applog::is_locked(&dir).unwrap();
                n += 1;
            }
            n
        })
    };
    for _ in 0..300 {
        let w = Writer::open(&dir, Options::new()).expect("a probe must not lock a writer out");
        assert!(applog::is_locked(&dir).unwrap());
        drop(w);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(prober.join().unwrap() > 0);
}
