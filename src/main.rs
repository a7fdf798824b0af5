//! The `heimdall` binary: see `heimdall --help`.

/// mimalloc: the migrations allocate and free many small documents from several threads,
/// where glibc's allocator spends much of its time on its arena locks. The `system-alloc`
/// feature leaves the system's allocator in place, for heap profilers (`heaptrack`) that
/// follow only it: `cargo build --release --features system-alloc`.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // 4 KiB pages rather than transparent huge pages: memory freed after a batch goes back to
    // the system page by page, so a migration's peak RSS stays near what it holds (with huge
    // pages, the clone benchmark's peak went from ~90 MB to 143–165 MB).
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    heimdall::cli::main()
}
