//! How the process uses the C allocator, which GStreamer, GLib, libnice and x264 allocate
//! through.
//!
//! glibc maps a block of at least the mmap threshold on its own and unmaps it when freed. By
//! default that threshold is dynamic: once such a block has been freed it rises to the
//! block's size (up to 32 MiB), after which video frames and encoder buffers come from the
//! heap arenas instead. x264 marks its large buffers for transparent huge pages; once freed,
//! those 2 MiB pages fill with small allocations and stay with the process, out of reach of
//! `malloc_trim`. So every viewer session used to leave ~15–20 MB behind.
//!
//! A fixed threshold of 128 KiB keeps frames and encoder buffers in mappings of their own,
//! returned to the system when a session ends. Buffer pools recycle frames while video flows,
//! so mapping costs nothing per frame (CPU unchanged in `cargo bench --bench camera`; RSS once
//! every viewer had left fell from 56 MB to 40 MB, see BENCHMARKS.md).
//!
//! Small blocks are another matter: the memory of thousands of connections that have closed
//! stays in the heap, free but resident, wherever a block still in use sits above it.
//! [`TrimPolicy`] decides, with the time passed in, when enough connections have gone for
//! [`release_free_memory`] (`malloc_trim`) to be worth it, and no more often than every
//! [`TRIM_INTERVAL`], so a busy server does not spend its time trimming.

use std::time::{Duration, Instant};

/// Blocks of this size or larger are mapped on their own, bytes.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Connections that must have closed since the last trim (and at least half of the most
/// seen since) before the next: a few MB at several KB each.
const TRIM_AFTER_GONE: usize = 500;

/// The least time between two trims.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(2);

/// GLib's allocator setting for the media worker, set in its environment when it is
/// started (GLib reads it as it loads, before any of the worker's code runs), unless the
/// environment already names one.
///
/// GLib 2.74 (Debian 12, Raspberry Pi OS) still serves GStreamer's small objects (buffers,
/// events, caps, list nodes) from its own slab allocator, whose per-thread caches and slabs
/// outlive the threads of viewers that have left and pin pages in every malloc arena:
/// thousands of viewers coming and going grew the worker by ~2 MB more than with `malloc`
/// (`cargo bench --bench churn`, BENCHMARKS.md). GLib 2.76 and later always use `malloc`.
pub const GLIB_SLICE: (&str, &str) = ("G_SLICE", "always-malloc");

/// Applies [`MMAP_THRESHOLD`]. Call first thing in `main`, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, and no other thread exists yet. A
    // refusal (0) leaves glibc's default, which works, only less frugally.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Hands the heap's free pages back to the system (`malloc_trim`). Takes a few milliseconds
/// per hundred MB of heap, during which other threads wait to allocate: call it rarely, as
/// [`TrimPolicy`] says, and off the async threads.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the
    // system; it is thread-safe and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// When to release free memory after many connections have gone. Pure: fed the number of
/// open connections and the time, it answers whether to trim now.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    /// The most connections seen since the last trim.
    peak: usize,
    /// When the last trim was due, if one was.
    last: Option<Instant>,
}

impl TrimPolicy {
    /// A policy that has seen no connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes `connections` open at `now`; true when the memory of those that closed since
    /// the last trim should be released now (at least [`TRIM_AFTER_GONE`] and half of the
    /// most seen have gone, and the last trim was [`TRIM_INTERVAL`] ago or more).
    pub fn due(&mut self, connections: usize, now: Instant) -> bool {
        self.peak = self.peak.max(connections);
        let gone = self.peak - connections;
        if gone < TRIM_AFTER_GONE || gone * 2 < self.peak {
            return false;
        }
        if !interval_passed(self.last, now) {
            return false;
        }
        self.last = Some(now);
        self.peak = connections;
        true
    }
}

/// Whether [`TRIM_INTERVAL`] has passed at `now` since the trim at `last` (or there was none).
fn interval_passed(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= TRIM_INTERVAL)
}

/// Peers released, one after another, before the media worker next trims: each leaves some
/// hundreds of KB of small blocks (SDP, ICE, DTLS and RTP state) behind in the heap arenas.
const TRIM_AFTER_RELEASED: usize = 50;

/// How long after the last session ended the media worker releases what the sessions ended
/// since its last trim left behind: a few viewers leaving a home camera may be all there is
/// for days.
pub const TRIM_WHEN_QUIET: Duration = Duration::from_secs(3);

/// When a process whose sessions end one at a time (the media worker: viewers come and go
/// while others watch, so its count of open sessions never falls far) should release free
/// memory: after [`TRIM_AFTER_RELEASED`] sessions have ended since the last trim, or
/// [`TRIM_WHEN_QUIET`] after the last of fewer; no more often than every [`TRIM_INTERVAL`].
/// Pure: fed the sessions ended and the time.
#[derive(Debug, Default)]
pub struct ReleaseTrim {
    /// Sessions ended since the last trim.
    released: usize,
    /// When the last of them ended.
    last_release: Option<Instant>,
    /// When the last trim was due, if one was.
    last: Option<Instant>,
}

impl ReleaseTrim {
    /// Nothing released yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `n` more sessions ended at `now`.
    pub fn released(&mut self, n: usize, now: Instant) {
        self.released = self.released.saturating_add(n);
        self.last_release = Some(now);
    }

    /// True when the memory of the sessions ended since the last trim should be released
    /// now.
    pub fn due(&mut self, now: Instant) -> bool {
        let quiet = self
            .last_release
            .is_some_and(|at| now.saturating_duration_since(at) >= TRIM_WHEN_QUIET);
        if self.released == 0 || (self.released < TRIM_AFTER_RELEASED && !quiet) {
            return false;
        }
        if !interval_passed(self.last, now) {
            return false;
        }
        self.last = Some(now);
        self.released = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_ending_one_at_a_time_are_trimmed_after_enough_and_at_most_every_interval() {
        let t0 = Instant::now();
        let mut p = ReleaseTrim::new();
        assert!(!p.due(t0));
        p.released(TRIM_AFTER_RELEASED - 1, t0);
        assert!(!p.due(t0));
        p.released(1, t0);
        assert!(p.due(t0));
        // Counted afresh after a trim.
        assert!(!p.due(t0 + TRIM_INTERVAL));
        p.released(TRIM_AFTER_RELEASED, t0 + TRIM_INTERVAL / 4);
        // Not again within the interval, but still owed.
        assert!(!p.due(t0 + TRIM_INTERVAL / 2));
        assert!(p.due(t0 + TRIM_INTERVAL));
    }

    #[test]
    fn a_few_sessions_ended_are_trimmed_once_no_more_end_for_a_while() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let quiet = TRIM_WHEN_QUIET.as_millis() as u64;
        let mut p = ReleaseTrim::new();
        // Nothing has ended: nothing to give back, however long it is quiet.
        assert!(!p.due(at(10 * quiet)));
        p.released(1, at(0));
        p.released(1, at(quiet / 2));
        // Still going on.
        assert!(!p.due(at(quiet)));
        assert!(p.due(at(quiet / 2 + quiet)));
        // Given back; quiet since, with nothing more ended.
        assert!(!p.due(at(5 * quiet)));
        // One more, soon after a trim: once it is quiet and the interval has passed.
        p.released(1, at(5 * quiet));
        assert!(!p.due(at(5 * quiet + quiet / 2)));
        assert!(p.due(at(6 * quiet)));
    }

    #[test]
    fn a_crowd_leaving_is_trimmed_after_and_at_most_every_interval() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = TrimPolicy::new();
        assert!(!p.due(20_000, at(0)));
        // Not yet half gone.
        assert!(!p.due(12_000, at(1)));
        assert!(p.due(9_000, at(2)));
        // Half gone again, but too soon after the last trim.
        assert!(!p.due(1_000, at(3)));
        assert!(p.due(0, at(4)));
        // Nothing more has gone.
        assert!(!p.due(0, at(10)));
    }

    #[test]
    fn a_few_leaving_or_a_steady_crowd_are_not_trimmed() {
        let t0 = Instant::now();
        let mut p = TrimPolicy::new();
        assert!(!p.due(400, t0));
        assert!(!p.due(0, t0 + Duration::from_secs(5)));
        let mut p = TrimPolicy::new();
        for s in 0..100 {
            let n = if s % 2 == 0 { 10_000 } else { 9_000 };
            assert!(!p.due(n, t0 + Duration::from_secs(s)));
        }
    }

    #[test]
    fn a_crowd_that_returns_and_leaves_again_is_trimmed_again() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = TrimPolicy::new();
        p.due(5_000, at(0));
        assert!(p.due(0, at(1)));
        assert!(!p.due(5_000, at(2)));
        assert!(p.due(100, at(60)));
    }

    #[test]
    fn releasing_free_memory_is_harmless() {
        let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![0; 100 + i]).collect();
        drop(v);
        release_free_memory();
    }
}
