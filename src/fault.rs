//! Test-only fault points, for the crash tests. Compiled only with the `fault-injection`
//! feature, which is off by default; the crate's own tests turn it on through a
//! dev-dependency on the crate itself. Without the feature, `fault_point!` expands to an
//! empty block: a normal build has no hook, no branch and no data for it.
//!
//! A test installs one hook per process ([`install`]); the writer and recovery call it at each
//! named [`Point`] they pass. The kill tests' child processes install a hook that counts the
//! hits of one point and sends the process SIGKILL at a chosen one.
//!
//! Every point lives in `segment.rs`, on the few functions every write goes through, so that
//! the writer's own code carries no hooks.

use std::sync::OnceLock;

/// A named place in the write, sync and recovery paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Point {
    /// A segment file was just grown (blocks reserved, size set), by the writer or by its
    /// pretoucher; nothing is written into the new bytes yet.
    AfterGrowth,
    /// A frame's bytes are in place but its header word (the publish of a record, a seal, or
    /// one frame of a batch) is not stored yet.
    BeforePublish,
    /// An msync is about to start (in `sync`, or when recovery makes a cut or a repaired seal
    /// durable).
    BeforeMsync,
    /// Inside `sync`: an msync returned Ok and the segment's synced mark is not stored yet.
    BeforeSyncedMark,
}

impl Point {
    /// Every point, for tests that iterate over them.
    pub const ALL: [Point; 4] = [
        Point::AfterGrowth,
        Point::BeforePublish,
        Point::BeforeMsync,
        Point::BeforeSyncedMark,
    ];

    /// A short name, for command lines and messages.
    pub fn name(self) -> &'static str {
        match self {
            Point::AfterGrowth => "after-growth",
            Point::BeforePublish => "before-publish",
            Point::BeforeMsync => "before-msync",
            Point::BeforeSyncedMark => "before-synced-mark",
        }
    }

    /// The point with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Point> {
        Point::ALL.into_iter().find(|p| p.name() == name)
    }
}

static HOOK: OnceLock<fn(Point)> = OnceLock::new();

/// Installs the process's fault hook. Returns false (and changes nothing) when one is already
/// installed.
pub fn install(hook: fn(Point)) -> bool {
    HOOK.set(hook).is_ok()
}

/// Called at each point; does nothing until a hook is installed.
pub(crate) fn hit(point: Point) {
    if let Some(hook) = HOOK.get() {
        hook(point);
    }
}
