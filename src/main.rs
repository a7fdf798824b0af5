//! The `heimdall` binary: see `heimdall --help`.

/// mimalloc: the migrations allocate and free many small documents from several threads,
/// where glibc's allocator spends much of its time on its arena locks. The `system-alloc`
/// feature leaves the system's allocator in place, for heap profilers (`heaptrack`) that
/// follow only it: `cargo build --release --features system-alloc`.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_t` enum of the mimalloc (v3) that
/// `libmimalloc-sys` 0.1.49 bundles (`c_src/mimalloc/v3/include/mimalloc.h`); the crate
/// leaves it unnamed, and Cargo.toml pins that version.
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // 4 KiB pages rather than transparent huge pages: memory freed after a batch goes back to
    // the system page by page, so a migration's peak RSS stays near what it holds (with huge
    // pages, the clone benchmark's peak went from ~90 MB to 143–165 MB).
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Pages a migration's batch freed go back to the system 10 ms later, not a second (ten,
    // for whole arena ranges) later: with mimalloc's delay, a clone's peak RSS carried 20 MB
    // of freed batches at 1M documents (79 MB against 59; 85 against 67 at 10M). With no
    // delay at all, memory freed and taken again a moment later went back and forth to the
    // system: a legacy import of 100k records spent a third of its CPU time in page faults and
    // `madvise` (system time 6.8 s at 0 ms, 4.3 s at 10 ms, peak RSS the same; the clone of
    // 1M documents 56 MB at 0 ms, 61 MB at 10 ms). `MIMALLOC_PURGE_DELAY` still wins.
    #[cfg(not(feature = "system-alloc"))]
    // SAFETY: set before any other thread starts (options are not thread safe to change);
    // `set_default` leaves an option the environment gave.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 10);
    }
    heimdall::cli::main()
}
