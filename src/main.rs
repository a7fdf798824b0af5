//! The `heimdall` binary: see `heimdall --help`.

/// mimalloc: the migrations allocate and free many small documents from several threads,
/// where glibc's allocator spends much of its time on its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_t` (libmimalloc-sys names only some
/// options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Memory freed after a batch goes back to the system at once, in 4 KiB pages rather than
    // transparent huge pages: a migration's peak RSS stays near what it holds.
    // SAFETY: setting an option is a plain store into mimalloc's option table; prctl with
    // PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    heimdall::cli::main()
}
