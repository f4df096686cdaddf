//! Analysis: a pure function from what was scanned to a verdict. No I/O: the decision table is
//! unit-tested row by row below, over synthetic scans.
//!
//! | what the scans show | verdict |
//! |---|---|
//! | a segment whose synced mark fails its check | corruption at offset 48 (its frames stay readable) |
//! | frames end (bad frame, zeros) below the synced mark | corruption at that frame |
//! | a torn batch (frames with `MORE` not ended by one without) starting below the synced mark | corruption where its frames stop |
//! | a damaged mark and a bad frame or garbage after the last record | corruption (torn or rotten cannot be told) |
//! | a blank segment that is not the newest | corruption: a segment lost its header |
//! | a headless segment (no magic, data after it): the newest, after a segment whose seal is not durable (or lost) | a crash: started again |
//! | a headless segment anywhere else | corruption: a damaged header |
//! | the newest segment blank after a durably sealed one | corruption (the checkpoint that made the seal durable made the next segment durable) |
//! | the newest segment durably sealed | corruption: the segment its seal names is missing |
//! | the same with a seal not yet durable | a crash: the next segment is started again |
//! | sealed (or full), next segment starts at the seal's seq | fine |
//! | sealed (or full), next segment starts elsewhere | corruption: a segment is missing, or two overlap |
//! | not sealed, clean end, zeros after, next segment continues it | lost seal: reseal |
//! | not sealed, next segment does not continue it, no later synced data | torn tail across segments: cut, remove the later ones |
//! | the same, but a later segment holds synced records | corruption |
//! | the same, but the next segment starts inside this one | corruption: overlapping segments |
//! | newest segment: bad frame, torn batch or non-zero bytes after the last record, at or after the mark | torn tail: cut (a torn batch from its first frame) |
//! | newest segment: clean | fine |

use std::path::PathBuf;

use super::scan::{Corruption, Scanned, Stop};
use crate::format::{self, HEADER_LEN};

/// A torn tail: bytes after the last good record that recovery cuts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment where the tail starts.
    pub segment: PathBuf,
    /// Byte offset of the first byte cut.
    pub offset: u64,
    /// Why it is cut (the bad frame, or non-zero bytes after the last record).
    pub reason: String,
    /// Later segment files that lie wholly in the torn tail (removed by recovery).
    pub later_segments: Vec<PathBuf>,
}

/// What [`analyze`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub corruptions: Vec<Corruption>,
    /// Index of the segment holding the tail, and the tail.
    pub torn: Option<(usize, TornTail)>,
    /// Non-last segments whose seal was lost but whose successor continues them.
    pub reseal: Vec<usize>,
}

fn corrupt(s: &Scanned, offset: u64, reason: impl Into<String>) -> Corruption {
    Corruption::new(s.entry.path.clone(), offset, reason)
}

fn stop_reason(s: &Scanned) -> String {
    match s.stop {
        Stop::Bad(b) => b.to_string(),
        Stop::Clean if s.blank => "segment header was never completed".into(),
        Stop::Clean => "records end before the synced mark".into(),
        Stop::Sealed | Stop::Full | Stop::Cut => "non-zero bytes after the last record".into(),
        Stop::TornBatch { at, records, why } => format!(
            "torn batch: the batch that starts here lost its last frame ({records} of its \
             frames are here, then at offset {at}: {why})"
        ),
    }
}

/// Whether a segment ends in a seal that its synced mark covers.
fn durably_sealed(s: &Scanned) -> bool {
    s.stop == Stop::Sealed && s.mark >= s.sealed_end() && !s.mark_damaged
}

/// Classifies the scanned segments: a contiguous run, oldest first, ending at the newest
/// segment (the first one's predecessors are trusted).
pub(crate) fn analyze(scans: &[Scanned]) -> Verdict {
    let mut v = Verdict::default();
    let n = scans.len();
    for (i, s) in scans.iter().enumerate() {
        let last = i + 1 == n;
        if s.mark_damaged {
            v.corruptions.push(corrupt(
                s,
                format::SYNCED_MARK_OFFSET,
                "synced mark fails its check",
            ));
            let unclear = matches!(s.stop, Stop::Bad(_) | Stop::TornBatch { .. })
                || (s.garbage_after && !s.is_sealed());
            if unclear {
                // Without the mark, damage after the last record cannot be told from a torn
                // tail: it may lie inside synced data.
                v.corruptions.push(corrupt(
                    s,
                    s.end,
                    format!("{} (the synced mark is damaged)", stop_reason(s)),
                ));
            }
        }
        // A segment without a header (blank, or headless: no magic but data after it).
        // A crash leaves one only where no checkpoint vouches for the segment before: the
        // checkpoint that makes a seal durable first flushes the next segment's header, and a
        // segment created after one full to its last byte (or as a log's first) has its
        // header msync'd as it is created, so then only a blank one (the creation itself cut
        // short) is a crash. Where nothing vouches, nothing from here on was ever synced: a
        // torn tail from this segment's start.
        if s.blank {
            let vouched = match i.checked_sub(1).map(|p| &scans[p]) {
                Some(prev) => {
                    durably_sealed(prev)
                        || (s.headless && matches!(prev.stop, Stop::Full | Stop::Cut))
                }
                None => s.headless,
            };
            if vouched {
                v.corruptions.push(corrupt(
                    s,
                    0,
                    if s.headless {
                        "segment header is damaged (its magic is zeroed) while the file holds \
                         data: not a blank segment"
                    } else {
                        "segment is blank, but the seal of the segment before says it was complete"
                    },
                ));
                continue;
            }
            if last && !s.headless {
                continue; // a crashed creation: the writer starts it again
            }
            if let Some(synced) = scans[i + 1..]
                .iter()
                .find(|l| l.mark > HEADER_LEN || l.mark_damaged)
            {
                v.corruptions.push(corrupt(
                    s,
                    0,
                    format!(
                        "segment header was never made durable, yet a later segment ({}) holds synced records",
                        synced.entry.path.display()
                    ),
                ));
                continue;
            }
            if v.corruptions.is_empty() {
                v.torn = Some((
                    i,
                    TornTail {
                        segment: s.entry.path.clone(),
                        offset: 0,
                        reason: "segment header was never made durable (a crash during a rollover)"
                            .into(),
                        later_segments: scans[i + 1..]
                            .iter()
                            .map(|l| l.entry.path.clone())
                            .collect(),
                    },
                ));
            }
            return v;
        }
        if last && durably_sealed(s) {
            v.corruptions.push(corrupt(
                s,
                s.end,
                format!(
                    "its seal names segment {}, which is missing",
                    crate::dir::segment_name(s.next_seq)
                ),
            ));
            continue;
        }
        // A frame missing or bad inside synced data is corruption; so is a torn batch that
        // the synced mark reaches into (the writer never syncs in the middle of a batch),
        // reported where its frames stop.
        if !s.is_sealed() && s.end < s.mark {
            let (offset, reason) = match s.stop {
                Stop::TornBatch { at, records, why } => (
                    at,
                    format!(
                        "torn batch inside synced data: {why}, after {records} frames of the \
                         batch that starts at offset {} (the synced mark is at {})",
                        s.end, s.mark
                    ),
                ),
                _ => (s.end, stop_reason(s)),
            };
            v.corruptions.push(corrupt(s, offset, reason));
            continue;
        }
        if let Some(next) = scans.get(i + 1) {
            let continues = next.entry.base == s.next_seq;
            match s.stop {
                // Bytes after a seal hold no records and are never read: nothing to report.
                Stop::Sealed | Stop::Full | Stop::Cut if continues => continue,
                Stop::Sealed | Stop::Full | Stop::Cut => {
                    let what = if next.entry.base < s.next_seq {
                        "two segments overlap"
                    } else {
                        "a segment is missing"
                    };
                    v.corruptions.push(corrupt(
                        next,
                        0,
                        format!(
                            "segment starts at seq {}, but the one before ends at seq {} ({what})",
                            next.entry.base, s.next_seq
                        ),
                    ));
                    continue;
                }
                // The seal was lost (power cut), the successor continues: keep, reseal.
                Stop::Clean if continues && !s.garbage_after && !s.blank => {
                    v.reseal.push(i);
                    continue;
                }
                _ => {}
            }
            // The tail of segment i is torn and later segments follow a gap: they hold only
            // unsynced records, unless one has a synced mark (then records were lost from
            // synced data: corruption).
            if let Some(synced) = scans[i + 1..]
                .iter()
                .find(|l| l.mark > HEADER_LEN || l.mark_damaged)
            {
                v.corruptions.push(corrupt(
                    s,
                    s.end,
                    format!(
                        "{}; a later segment ({}) holds synced records",
                        stop_reason(s),
                        synced.entry.path.display()
                    ),
                ));
                continue;
            }
            if next.entry.base < s.next_seq {
                v.corruptions.push(corrupt(
                    next,
                    0,
                    format!(
                        "segment starts at seq {}, inside the segment before (which ends at seq {}): two segments overlap",
                        next.entry.base, s.next_seq
                    ),
                ));
                continue;
            }
            if v.corruptions.is_empty() {
                v.torn = Some((
                    i,
                    TornTail {
                        segment: s.entry.path.clone(),
                        offset: s.end,
                        reason: match s.stop {
                            Stop::Clean => format!(
                                "records stop at seq {} but a later segment starts at seq {}",
                                s.next_seq, next.entry.base
                            ),
                            _ => stop_reason(s),
                        },
                        later_segments: scans[i + 1..]
                            .iter()
                            .map(|l| l.entry.path.clone())
                            .collect(),
                    },
                ));
            }
            return v;
        }
        let torn = match s.stop {
            Stop::Bad(b) => Some(b.to_string()),
            Stop::TornBatch { .. } => Some(stop_reason(s)),
            _ if s.garbage_after => Some("non-zero bytes after the last record".into()),
            _ => None,
        };
        if let (Some(reason), true) = (torn, v.corruptions.is_empty()) {
            v.torn = Some((
                i,
                TornTail {
                    segment: s.entry.path.clone(),
                    offset: s.end,
                    reason,
                    later_segments: Vec::new(),
                },
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::Entry;
    use crate::format::BadFrame;

    /// A segment at `base` holding `records` records of 16 bytes each, ending with `stop`.
    fn seg(base: u64, records: u64, stop: Stop) -> Scanned {
        let end = HEADER_LEN + records * 16;
        Scanned {
            entry: Entry {
                base,
                path: PathBuf::from(format!("{base}.seg")),
            },
            blank: false,
            headless: false,
            end,
            next_seq: base + records,
            records,
            stop,
            mark: 0,
            mark_damaged: false,
            garbage_after: false,
            size: 4096,
            reservation: 4096,
            page_size: 4096,
            segment_pages: 1,
            version: 2,
            first_time: 0,
            last_time: 0,
        }
    }

    fn synced(mut s: Scanned, mark: u64) -> Scanned {
        s.mark = mark;
        s
    }

    fn garbage(mut s: Scanned) -> Scanned {
        s.garbage_after = true;
        s
    }

    const BAD: Stop = Stop::Bad(BadFrame::Garbage);

    #[test]
    fn clean_log_is_fine() {
        let v = analyze(&[seg(0, 3, Stop::Sealed), seg(3, 2, Stop::Clean)]);
        assert_eq!(v, Verdict::default());
        assert_eq!(analyze(&[]), Verdict::default());
    }

    #[test]
    fn damaged_mark_is_corruption_but_keeps_the_frames() {
        let mut s = seg(0, 5, Stop::Clean);
        s.mark_damaged = true;
        let v = analyze(&[s]);
        assert_eq!(v.corruptions.len(), 1);
        assert_eq!(v.corruptions[0].offset, format::SYNCED_MARK_OFFSET);
        assert!(v.torn.is_none());
    }

    #[test]
    fn damaged_mark_and_bad_frame_cannot_be_called_torn() {
        let mut s = seg(0, 5, BAD);
        s.mark_damaged = true;
        let v = analyze(&[s]);
        assert_eq!(v.corruptions.len(), 2, "{v:?}");
        assert!(v.torn.is_none());
    }

    #[test]
    fn bad_frame_below_mark_is_corruption() {
        let v = analyze(&[synced(seg(0, 2, BAD), 1000)]);
        assert_eq!(v.corruptions.len(), 1);
        assert_eq!(v.corruptions[0].offset, HEADER_LEN + 32);
        assert!(v.torn.is_none());
    }

    #[test]
    fn records_ending_below_mark_are_corruption() {
        let v = analyze(&[synced(seg(0, 2, Stop::Clean), 1000)]);
        assert_eq!(v.corruptions.len(), 1);
        assert!(v.corruptions[0].reason.contains("before the synced mark"));
    }

    #[test]
    fn blank_segment_before_newer_one() {
        let mut b = Scanned::blank(Entry {
            base: 3,
            path: PathBuf::from("3.seg"),
        });
        b.blank = true;
        // After a durable seal: damage.
        let v = analyze(&[
            synced(seg(0, 3, Stop::Sealed), HEADER_LEN + 56),
            b.clone(),
            seg(3, 1, Stop::Clean),
        ]);
        assert!(
            v.corruptions.iter().any(|c| c.reason.contains("blank")),
            "{v:?}"
        );
        // After a seal not yet durable: a crash during rollovers, cut from its start.
        let v = analyze(&[seg(0, 3, Stop::Sealed), b.clone(), seg(3, 1, Stop::Clean)]);
        let (i, t) = v.torn.expect("torn");
        assert_eq!((i, t.offset, t.later_segments.len()), (1, 0, 1));
        // ...unless a later segment holds synced records.
        let v = analyze(&[
            seg(0, 3, Stop::Sealed),
            b,
            synced(seg(3, 1, Stop::Clean), HEADER_LEN + 16),
        ]);
        assert!(!v.corruptions.is_empty(), "{v:?}");
    }

    fn headless(base: u64) -> Scanned {
        Scanned::headless(Entry {
            base,
            path: PathBuf::from(format!("{base}.seg")),
        })
    }

    #[test]
    fn headless_newest_after_a_seal_not_yet_durable_is_a_crash() {
        let v = analyze(&[seg(0, 3, Stop::Sealed), headless(3)]);
        assert!(v.corruptions.is_empty(), "{v:?}");
        let (i, t) = v.torn.expect("a torn tail from the segment's start");
        assert_eq!((i, t.offset), (1, 0));
    }

    #[test]
    fn headless_segment_anywhere_else_is_corruption() {
        for scans in [
            vec![
                synced(seg(0, 3, Stop::Sealed), HEADER_LEN + 56),
                headless(3),
            ],
            vec![seg(0, 3, Stop::Full), headless(3)],
            vec![headless(0)],
        ] {
            let v = analyze(&scans);
            assert!(
                v.corruptions
                    .iter()
                    .any(|c| c.offset == 0 && c.reason.contains("header")),
                "{v:?}"
            );
        }
    }

    #[test]
    fn newest_blank_segment_after_a_full_one_is_a_crashed_creation() {
        let b = Scanned::blank(Entry {
            base: 3,
            path: PathBuf::from("3.seg"),
        });
        let v = analyze(&[seg(0, 3, Stop::Full), b]);
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn newest_blank_segment_after_a_durable_seal_is_corruption() {
        let b = Scanned::blank(Entry {
            base: 3,
            path: PathBuf::from("3.seg"),
        });
        let v = analyze(&[synced(seg(0, 3, Stop::Sealed), HEADER_LEN + 56), b.clone()]);
        assert!(v.corruptions[0].reason.contains("seal"), "{v:?}");
        // A seal not yet durable: a crash while the next segment was created.
        let v = analyze(&[seg(0, 3, Stop::Sealed), b]);
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn newest_segment_durably_sealed_means_its_successor_is_missing() {
        let v = analyze(&[synced(seg(0, 3, Stop::Sealed), HEADER_LEN + 56)]);
        assert!(v.corruptions[0].reason.contains("missing"), "{v:?}");
        let v = analyze(&[seg(0, 3, Stop::Sealed)]);
        assert_eq!(
            v,
            Verdict::default(),
            "a seal not yet durable: the next segment is lost"
        );
        let v = analyze(&[seg(0, 3, Stop::Full)]);
        assert_eq!(
            v,
            Verdict::default(),
            "full: the next segment comes at the next append"
        );
    }

    #[test]
    fn sealed_then_gap_is_missing_segment() {
        let v = analyze(&[seg(0, 3, Stop::Sealed), seg(5, 1, Stop::Clean)]);
        assert_eq!(v.corruptions.len(), 1);
        assert!(v.corruptions[0].reason.contains("missing"), "{v:?}");
    }

    #[test]
    fn sealed_then_overlap_is_corruption() {
        let v = analyze(&[seg(0, 3, Stop::Full), seg(2, 1, Stop::Clean)]);
        assert!(v.corruptions[0].reason.contains("overlap"), "{v:?}");
    }

    #[test]
    fn lost_seal_with_continuing_successor_is_resealed() {
        let v = analyze(&[seg(0, 3, Stop::Clean), seg(3, 1, Stop::Clean)]);
        assert_eq!(v.reseal, vec![0]);
        assert!(v.corruptions.is_empty() && v.torn.is_none());
    }

    #[test]
    fn lost_seal_with_garbage_is_torn_across_segments() {
        let v = analyze(&[garbage(seg(0, 3, Stop::Clean)), seg(3, 1, Stop::Clean)]);
        let (i, t) = v.torn.expect("torn");
        assert_eq!(i, 0);
        assert_eq!(t.later_segments, vec![PathBuf::from("3.seg")]);
    }

    #[test]
    fn torn_tail_then_gap_removes_later_unsynced_segments() {
        let v = analyze(&[seg(0, 3, BAD), seg(7, 1, Stop::Clean)]);
        let (i, t) = v.torn.expect("torn");
        assert_eq!((i, t.offset), (0, HEADER_LEN + 48));
        assert_eq!(t.later_segments.len(), 1);
    }

    #[test]
    fn torn_tail_then_synced_segment_is_corruption() {
        let v = analyze(&[
            seg(0, 3, BAD),
            synced(seg(7, 2, Stop::Clean), HEADER_LEN + 32),
        ]);
        assert!(v.torn.is_none());
        assert!(v.corruptions[0].reason.contains("holds synced records"));
    }

    #[test]
    fn torn_tail_then_overlapping_segment_is_corruption() {
        let v = analyze(&[seg(0, 3, BAD), seg(1, 1, Stop::Clean)]);
        assert!(v.torn.is_none());
        assert!(v.corruptions[0].reason.contains("overlap"), "{v:?}");
    }

    #[test]
    fn newest_bad_frame_after_mark_is_torn() {
        let v = analyze(&[synced(seg(0, 3, BAD), HEADER_LEN + 16)]);
        assert!(v.corruptions.is_empty());
        assert_eq!(v.torn.expect("torn").1.offset, HEADER_LEN + 48);
    }

    #[test]
    fn newest_garbage_after_last_record_is_torn() {
        let v = analyze(&[garbage(seg(0, 3, Stop::Clean))]);
        assert!(v.torn.expect("torn").1.reason.contains("non-zero"));
    }

    #[test]
    fn torn_batch_is_torn_from_its_first_frame_or_corruption_below_the_mark() {
        let torn = Stop::TornBatch {
            at: HEADER_LEN + 80,
            records: 2,
            why: crate::segment::RunBreak::Empty,
        };
        // The batch starts after 3 records, at or after the mark: a torn tail from there.
        let v = analyze(&[garbage(synced(seg(0, 3, torn), HEADER_LEN + 48))]);
        let (_, t) = v.torn.expect("torn");
        assert_eq!(t.offset, HEADER_LEN + 48);
        assert!(t.reason.contains("torn batch"), "{t:?}");
        // The mark reaches into the batch: corruption where its frames stop.
        let v = analyze(&[garbage(synced(seg(0, 3, torn), HEADER_LEN + 64))]);
        assert!(v.torn.is_none());
        assert_eq!(v.corruptions[0].offset, HEADER_LEN + 80);
        assert!(v.corruptions[0].reason.contains("synced"), "{v:?}");
    }

    #[test]
    fn garbage_after_a_seal_is_ignored() {
        let v = analyze(&[garbage(seg(0, 3, Stop::Sealed)), seg(3, 1, Stop::Clean)]);
        assert_eq!(v, Verdict::default());
    }
}
