//! How the process uses the C allocator, which GStreamer, GLib and libnice allocate through.
//!
//! glibc's defaults suit a server with many cores and memory to spare. Here:
//!
//! - **Arenas.** Each thread that allocates may get an arena of its own (up to 8 per core),
//!   and an arena's free memory stays with it. A viewer's session runs on a dozen GStreamer,
//!   ICE and DTLS threads, so after it ends freed memory lies in many arenas. Two arenas keep
//!   contention low on a 4-core board and the leftovers few.
//! - **Large blocks.** Video frames and encoder buffers are hundreds of kilobytes to a few
//!   megabytes. By default the threshold above which glibc maps such a block on its own
//!   rises (up to 32 MB) once one has been freed, after which frames come from the heap and
//!   are kept there. A fixed 128 KiB threshold keeps every block that size or larger mapped
//!   on its own and returned to the system when freed.
//!
//! Measured with `cargo bench --bench camera` (BENCHMARKS.md): RSS once every viewer has left
//! fell from ~50 MB to ~35 MB after 12 sessions, at the same CPU.

/// Arenas at most (see the module comment).
const ARENA_MAX: i32 = 2;
/// Blocks of this size or larger are mapped on their own, bytes.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Applies the settings above. Call first thing in `main`, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, and no other thread exists yet.
    // A refusal (0) leaves glibc's defaults, which work, only less frugally.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
