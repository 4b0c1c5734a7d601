//! `peer-client receive CODE`: receives what a sender offers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::args::NetArgs;
use crate::lan::find_senders;
use crate::progress::{Bar, counts, human_bytes, megabytes_per_second};
use peer_client::auth::{Code, Role};
use peer_client::printable;
use peer_client::transfer::{
    DEFAULT_IDLE_TIMEOUT, EntryKind, Link, Manifest, Offer, ReceiveOptions, TransferError,
};

/// Entries listed before asking; the rest are counted.
const LISTED: usize = 20;
/// How long `receive` without `--server` looks for the sender on the local
/// network.
pub(crate) const DISCOVERY_WAIT: Duration = Duration::from_secs(3);

/// Arguments of `receive`.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// The code phrase the sender printed (`7-crossword-banana`).
    pub code: String,

    /// Signaling server and transport settings.
    #[command(flatten)]
    pub net: NetArgs,

    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Accept without asking.
    #[arg(long, short)]
    pub yes: bool,

    /// Replace existing files that differ from the offered ones.
    #[arg(long)]
    pub overwrite: bool,

    /// Print JSON lines on stdout (the offer, then a summary) instead of
    /// text and progress bars.
    #[arg(long)]
    pub json: bool,

    /// Receive as one of several receivers of a swarm (the sender ran
    /// `send --receivers N`): pieces come from the sender and from the other
    /// receivers, and this one passes on what it has until they all finish.
    /// Without it, a code nobody sends to one receiver is looked for in a
    /// swarm too.
    #[arg(long)]
    pub swarm: bool,

    /// Give up when the sender sends nothing for this many seconds while
    /// data is expected (it may have hung). Files received so far are kept
    /// for a resume.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
}

pub(crate) async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    let code = Code::parse(&args.code)?;
    if args.swarm {
        return crate::swarm::receive(&args, &code).await;
    }
    let link = match open_link(&args, &code).await {
        Ok(link) => link,
        Err(err) if names_no_sender(&err) => {
            // Nobody sends this code to one receiver: a sender to several may.
            tracing::info!("nobody sends this code to one receiver; looking for a swarm");
            return match crate::swarm::receive(&args, &code).await {
                Err(swarm_err) if names_no_sender(&swarm_err) => Err(err),
                other => other,
            };
        }
        Err(err) => return Err(err),
    };
    let offer = Offer::read(link, Duration::from_secs(args.idle_timeout)).await?;
    let manifest = offer.manifest();
    show(&args, manifest);
    if !args.yes && !ask(args.out.clone()).await {
        offer.decline().await;
        anyhow::bail!("declined; no file was written");
    }
    let options = ReceiveOptions {
        out: args.out.clone(),
        overwrite: args.overwrite,
    };
    let mut bar = Bar::new(args.json);
    let summary = offer
        .accept(&options, &mut bar)
        .await
        .context("the transfer stopped")?;
    drop(bar);
    let rate = megabytes_per_second(summary.received_bytes, summary.elapsed);
    if args.json {
        println!(
            "{}",
            json!({
                "event": "done",
                "files": summary.files,
                "dirs": summary.dirs,
                "total_bytes": summary.total_bytes,
                "received_bytes": summary.received_bytes,
                "skipped_bytes": summary.skipped_bytes,
                "seconds": summary.elapsed.as_secs_f64(),
                "mb_per_s": rate,
                "out": args.out.display().to_string(),
            })
        );
    } else {
        println!(
            "Received {} ({}) into {} in {:.2} s, {rate:.1} MB/s; every file verified (BLAKE3); {} were already here",
            counts(summary.files, summary.dirs),
            human_bytes(summary.received_bytes),
            args.out.display(),
            summary.elapsed.as_secs_f64(),
            human_bytes(summary.skipped_bytes),
        );
    }
    Ok(())
}

/// Finds the sender of `code` on the local network and meets it on its own
/// signaling server. A sender that cannot prove the code (a neighbour
/// announcing the same number) gets nothing; the next one is tried.
/// The authenticated link to the one-to-one sender of `code`.
async fn open_link(args: &ReceiveArgs, code: &Code) -> anyhow::Result<Link> {
    match &args.net.server {
        Some(server) => {
            let config = args.net.session_config(server, "");
            Ok(Link::open(config, code, Role::Receiver, false).await?)
        }
        None => link_on_this_network(args, code).await,
    }
}

/// Whether `err` says that nobody waits in the code's room.
fn names_no_sender(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<TransferError>(),
            Some(TransferError::NoSender { .. })
        )
    })
}

async fn link_on_this_network(args: &ReceiveArgs, code: &Code) -> anyhow::Result<Link> {
    let nameplate = code.nameplate().to_owned();
    let senders =
        tokio::task::spawn_blocking(move || find_senders(&nameplate, DISCOVERY_WAIT)).await??;
    if senders.is_empty() {
        anyhow::bail!(
            "no sender of code number {} on this network (looked for {} s). Is `peer-client send` \
             running on a computer of this network, and is its code right? For computers on \
             different networks, run signaling-server where both reach it and pass --server to \
             both (docs/deploy.md)",
            code.nameplate(),
            DISCOVERY_WAIT.as_secs()
        );
    }
    let mut last_error = None;
    for sender in &senders {
        for url in sender.urls() {
            let config = args.net.session_config(&url, "");
            match Link::open(config, code, Role::Receiver, false).await {
                Ok(link) => return Ok(link),
                Err(err) => {
                    tracing::info!(%url, %err, "this sender did not work out");
                    last_error = Some(anyhow::Error::from(err).context(format!(
                        "the sender found at {url} for code number {}",
                        code.nameplate()
                    )));
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no sender could be reached")))
}

pub(crate) fn show(args: &ReceiveArgs, manifest: &Manifest) {
    if args.json {
        println!(
            "{}",
            json!({
                "event": "offer",
                "files": manifest.files(),
                "dirs": manifest.dirs(),
                "total_bytes": manifest.total_bytes(),
            })
        );
        return;
    }
    eprintln!(
        "The sender offers {} ({}):",
        counts(manifest.files(), manifest.dirs()),
        human_bytes(manifest.total_bytes())
    );
    for entry in manifest.entries().iter().take(LISTED) {
        match entry.kind {
            EntryKind::Dir => eprintln!("  {}/", printable(&entry.path)),
            EntryKind::File => {
                eprintln!("  {} ({})", printable(&entry.path), human_bytes(entry.size))
            }
        }
    }
    if manifest.entries().len() > LISTED {
        eprintln!("  … and {} more", manifest.entries().len() - LISTED);
    }
}

/// Asks on stderr, reads a line from stdin; anything but y/yes declines.
pub(crate) async fn ask(out: PathBuf) -> bool {
    eprint!("Accept into {}? [y/N] ", out.display());
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).is_ok()
            && matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}
