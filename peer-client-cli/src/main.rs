//! `peer-client`: parses the command line and runs it (see [`cli::run`]).

mod args;
mod bench;
mod bench_peer;
mod chat;
mod cli;
mod echo;
mod lan;
mod progress;
mod receive;
mod room_bot;
mod send;
mod swarm;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,webrtc=error,rtc=error,rtc_ice=error,rtc_dtls=error",
                )
            }),
        )
        .init();
    cli::run(cli::Cli::parse()).await
}
