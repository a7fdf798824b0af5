//! The `heimdall` binary: see `heimdall --help`.

fn main() -> std::process::ExitCode {
    heimdall::cli::main()
}
