//! Load tools for leptos-presence. Every loop is bounded in count and time; every address is
//! loopback. Run through `.ci/bench` (see BENCHMARKS.md), or directly:
//!
//! ```text
//! presence-bench serve   [--port 3500]
//! presence-bench seed    [--url http://127.0.0.1:3500] [--sessions 1000] [--out DIR]
//! presence-bench fanout  [--subscribers 1000] [--joins 200]
//! presence-bench memory  [--sessions 100000] [--subscribers 1000]
//! presence-bench soak    [--sessions 10000] [--seconds 1800] [--churn 100] [--interval-ms 5000]
//! presence-bench readers [--url http://127.0.0.1:3500] [--sessions 5000] [--readers 3] [--seconds 5]
//! ```
#![forbid(unsafe_code)]

mod args;
mod fanout;
mod http1;
mod memory;
mod readers;
mod seed;
mod serve;
mod soak;

fn main() {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let args = args::Args::parse(argv);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match command.as_str() {
            "serve" => serve::run(&args).await,
            "seed" => seed::run(&args).await,
            "fanout" => fanout::run(&args).await,
            "memory" => memory::run(&args).await,
            "soak" => soak::run(&args).await,
            "readers" => readers::run(&args).await,
            other => Err(format!(
                "unknown command {other:?}: expected serve, seed, fanout, memory, soak or readers"
            )),
        }
    });
    if let Err(e) = result {
        eprintln!("presence-bench: {e}");
        std::process::exit(1);
    }
}
