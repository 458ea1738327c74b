use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The static musl build allocates with mimalloc. musl's own malloc serialises every thread on
/// one lock and hands freed pages back at once; mimalloc keeps per-thread heaps. Against the
/// tuned glibc build it measured the same records/s within the runs' spread, 1.05-1.22x the CPU
/// per record and 2.2-2.6x the peak RSS (46-50 MB; BENCHMARKS.md, "The static musl build").
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = wasmkafka::cli::Cli::parse();
    let filter =
        EnvFilter::try_from_env("WASMKAFKA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only on a terminal (and never with NO_COLOR): a log piped to a file or a
    // collector stays plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .with_env_filter(filter);
    match cli.log_format {
        wasmkafka::cli::LogFormat::Text => logs.init(),
        wasmkafka::cli::LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = runtime.block_on(wasmkafka::cli::execute(cli));
    // A thread still blocked in a write to a stdout nobody reads does not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// glibc's allocator, left to itself, hands the consumer's large buffers (fetch answers,
/// decompressed batches, record vectors of a few MB) back to the kernel when they are freed and
/// faults fresh zeroed pages in for the next ones, and keeps a separate arena for each thread
/// that allocates. Both cost: on 1M lz4 records, page faults were about a fifth of the
/// profile, and the arenas held freed memory apart. One arena, and keeping freed memory up to
/// 64 MiB for reuse, measured (median of 6 runs, BENCHMARKS.md): CPU 0.19 -> 0.12 s and peak
/// RSS 35 -> 29 MB on lz4, 0.11 -> 0.10 s and 29 -> 24 MB uncompressed. What the consumer holds
/// is bounded by its buffers, so the retained memory is too. `MALLOC_*` variables set by the
/// user win: nothing is changed when one is present.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    if std::env::vars_os().any(|(key, _)| key.to_string_lossy().starts_with("MALLOC_")) {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
