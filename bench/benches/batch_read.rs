//! What reading a record costs, by how it was appended: one `append` per record, or
//! `append_batch` of 64 records (a reader walks a batch to its last frame, checking each
//! frame's CRC, before it yields its first record; it then lends the batch's frames without
//! checking them again).
//!
//! Each log holds 2^18 records of 128 B, written with default options and synced before
//! anything is timed; it stays in the page cache. One iteration is one `Reader::next`; a reader
//! that reaches the end seeks back to 0 (untimed).
//! - `batch_read/single`: records appended one by one (no batch bit);
//! - `batch_read/batched_64`: records appended in batches of 64.
//!
//! Run: `cargo bench -p applog-bench --bench batch_read`.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORDS: u64 = 1 << 18;

fn write_log(dir: &Path, batch: usize) {
    let mut w = Writer::open(dir, Options::new()).expect("open writer");
    let data: Vec<u8> = (0..128).map(|i| (i * 7 + 3) as u8).collect();
    let records: Vec<&[u8]> = vec![&data[..]; batch];
    for _ in 0..RECORDS / batch as u64 {
        if batch == 1 {
            w.append(&data).expect("append");
        } else {
            w.append_batch(&records).expect("append");
        }
    }
    w.close().expect("close");
}

/// Time for `iters` calls of `next`, seeking back to 0 (untimed) at the end of the log.
fn read(r: &mut Reader, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if r.position() >= RECORDS {
            r.seek(0).expect("seek");
        }
        let k = left.min(RECORDS - r.position());
        let t = Instant::now();
        for _ in 0..k {
            black_box(r.next().expect("next").expect("record").data()[0]);
        }
        total += t.elapsed();
        left -= k;
    }
    total
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::Builder::new()
        .prefix("applog-batch-read-")
        .tempdir_in(support::bench_root())
        .expect("tempdir");
    let mut group = c.benchmark_group("batch_read");
    group.throughput(Throughput::Elements(1));
    for (name, batch) in [("single", 1), ("batched_64", 64)] {
        let dir = tmp.path().join(name);
        write_log(&dir, batch);
        group.bench_function(name, |b| {
            let mut r = Reader::open(&dir).expect("reader");
            b.iter_custom(|iters| read(&mut r, iters));
        });
    }
    group.finish();
}

criterion_group!(batch_read, benches);
criterion_main!(batch_read);
