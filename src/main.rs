//! The `heimdall` binary: see `heimdall --help`.

/// mimalloc: the migrations allocate and free many small documents from several threads,
/// where glibc's allocator spends much of its time on its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    heimdall::cli::main()
}
