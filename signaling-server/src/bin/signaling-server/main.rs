//! `signaling-server`: parses options, sets up logging, runs the server.

mod args;
mod healthcheck;

use anyhow::Context;
use args::{Args, Command, LogFormat};
use clap::Parser;
use signaling_server::{Server, auth};
use tracing_subscriber::EnvFilter;

/// jemalloc with its background threads on: memory freed after a load peak
/// goes back to the system within its decay time (10 s) even when the server
/// is idle, where glibc's malloc kept 70–80 % of the growth (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Command::Token(token)) => {
            println!(
                "{}",
                auth::mint(token.auth_secret.as_bytes(), &token.room, token.ttl.0)
            );
            return Ok(());
        }
        Some(Command::Healthcheck(check)) => return healthcheck::run(check),
        None => {}
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime =
        signaling_server::runtime(args.worker_threads).context("cannot start the async runtime")?;
    let config = args.config();
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        // One plain line on stdout, so scripts that pass port 0 learn the port.
        println!("listening on {}", server.local_addr());
        server.run(signaling_server::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
