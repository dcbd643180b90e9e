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

/// Blocks of this size or larger are mapped on their own, bytes.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Applies the setting above. Call first thing in `main`, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, and no other thread exists yet. A
    // refusal (0) leaves glibc's default, which works, only less frugally.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
