//! `peer-client send PATH...`: offers files under a code phrase.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::args::NetArgs;
use crate::lan::{LanHost, is_announced};
use crate::progress::{Bar, counts, human_bytes, megabytes_per_second};
use peer_client::auth::{Code, Role};
use peer_client::transfer::{Link, Source, TransferError, send};

/// Generated codes tried when a number is already in use.
pub(crate) const CODE_ATTEMPTS: usize = 5;
/// How long a sender on the local network listens for another sender that
/// announces the number it drew.
const NUMBER_CHECK: Duration = Duration::from_millis(400);

/// Arguments of `send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Files and directories to send (directories with everything in them).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Signaling server and transport settings.
    #[command(flatten)]
    pub net: NetArgs,

    /// Use this code phrase instead of a generated one: a number, a dash,
    /// then secret words (`7-crossword-banana`). Too short a secret is refused.
    #[arg(long)]
    pub code: Option<String>,

    /// Print JSON lines on stdout (the code, then a summary) instead of text
    /// and progress bars.
    #[arg(long)]
    pub json: bool,

    /// Send to this many receivers at once, all with the same code: they
    /// pass on to each other the pieces they have, so this computer uploads
    /// the files about once. Sending ends when that many hold every file.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=peer_client::swarm::MAX_PEERS as u64))]
    pub receivers: u64,
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<()> {
    let source = Source::collect(&args.paths)?;
    let mut meeting = match &args.net.server {
        Some(server) => Meeting::Server(server.clone()),
        None => Meeting::Lan(LanHost::start().await?),
    };
    let result = tokio::select! {
        result = offer_and_send(&args, &source, &mut meeting) => result,
        signal = stop_requested() => Err(anyhow::anyhow!("stopped by {signal}; nothing more is sent")),
    };
    // On the local network this withdraws the announcement, so receivers
    // do not find a sender that is gone.
    meeting.end().await;
    result
}

/// Completes on Ctrl-C or SIGTERM, naming which.
async fn stop_requested() -> &'static str {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        Some(()) = async { match terminate.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => "SIGTERM",
    }
}

/// Where the receiver meets this sender.
pub(crate) enum Meeting {
    /// A signaling server both machines reach (`--server`).
    Server(String),
    /// This program's own server, announced on the local network.
    Lan(LanHost),
}

impl Meeting {
    /// The signaling server this program's session joins.
    pub(crate) fn session_url(&self) -> String {
        match self {
            Self::Server(server) => server.clone(),
            Self::Lan(host) => host.local_url(),
        }
    }

    /// Takes `code` for this send: on the local network, announces it,
    /// unless it was `generated` and another sender announces its number
    /// already (then returns false: draw another).
    async fn take(&mut self, code: &Code, generated: bool) -> anyhow::Result<bool> {
        let Self::Lan(host) = self else {
            return Ok(true);
        };
        let nameplate = code.nameplate().to_owned();
        if generated
            && tokio::task::spawn_blocking(move || is_announced(&nameplate, NUMBER_CHECK)).await??
        {
            return Ok(false);
        }
        host.announce(code.nameplate())?;
        Ok(true)
    }

    /// The code for the next attempt: `chosen`, or a generated one whose
    /// number no other sender of the network announces (at most
    /// [`CODE_ATTEMPTS`] attempts in all, counted in `attempt`).
    pub(crate) async fn draw(
        &mut self,
        chosen: Option<&Code>,
        attempt: &mut usize,
    ) -> anyhow::Result<Code> {
        loop {
            *attempt += 1;
            let code = chosen.cloned().unwrap_or_else(Code::generate);
            if self.take(&code, chosen.is_none()).await? {
                return Ok(code);
            }
            if *attempt >= CODE_ATTEMPTS {
                anyhow::bail!(
                    "other senders on this network announce every number drawn; pass --code"
                );
            }
        }
    }

    /// What the other machine runs to receive (as one of a swarm's
    /// receivers with `swarm`).
    fn receive_command(&self, code: &Code, swarm: bool) -> String {
        let swarm = if swarm { " --swarm" } else { "" };
        match self {
            Self::Server(server) => format!("peer-client receive{swarm} {code} --server {server}"),
            Self::Lan(_) => format!("peer-client receive{swarm} {code}"),
        }
    }

    /// The link that opens the transfer page with the code (of a swarm).
    fn web_link(&self, code: &Code, swarm: bool) -> Option<String> {
        match self {
            Self::Server(server) => web_link(server, code, swarm),
            Self::Lan(host) => web_link(&host.lan_url()?, code, swarm),
        }
    }

    async fn end(self) {
        if let Self::Lan(host) = self {
            host.stop().await;
        }
    }
}

async fn offer_and_send(
    args: &SendArgs,
    source: &Source,
    meeting: &mut Meeting,
) -> anyhow::Result<()> {
    if args.receivers > 1 {
        return crate::swarm::send(args, source.clone(), meeting).await;
    }
    let manifest = &source.manifest;
    let chosen = args.code.as_deref().map(Code::parse).transpose()?;
    let mut attempt = 0;
    let mut link = loop {
        let code = meeting.draw(chosen.as_ref(), &mut attempt).await?;
        let config = args.net.session_config(&meeting.session_url(), "");
        let waiting = Link::open(config, &code, Role::Sender, chosen.is_none());
        let announce = announce(
            args,
            &code,
            meeting,
            manifest.files(),
            manifest.dirs(),
            manifest.total_bytes(),
        );
        let (result, shown) = showing_code(waiting, &announce).await;
        match result {
            Ok(link) => {
                if !shown {
                    announce();
                }
                break link;
            }
            Err(TransferError::NameplateInUse { .. })
                if chosen.is_none() && attempt < CODE_ATTEMPTS =>
            {
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    };
    if !args.json {
        eprintln!("The receiver proved it knows the code; sending.");
    }
    let mut bar = Bar::new(args.json);
    let result = send(&mut link, source, &mut bar).await;
    drop(bar);
    match &result {
        // Data still in flight will never be acknowledged by a peer that left.
        Err(err) if err.peer_knows() => link.leave().await,
        _ => link.close().await,
    }
    let summary = result.context("the transfer stopped")?;
    let rate = megabytes_per_second(summary.sent_bytes, summary.elapsed);
    if args.json {
        println!(
            "{}",
            json!({
                "event": "done",
                "files": summary.files,
                "dirs": summary.dirs,
                "total_bytes": summary.total_bytes,
                "sent_bytes": summary.sent_bytes,
                "skipped_bytes": summary.skipped_bytes,
                "seconds": summary.elapsed.as_secs_f64(),
                "mb_per_s": rate,
            })
        );
    } else {
        println!(
            "Sent {} ({}) in {:.2} s, {rate:.1} MB/s; {} skipped (already on the receiver)",
            counts(summary.files, summary.dirs),
            human_bytes(summary.sent_bytes),
            summary.elapsed.as_secs_f64(),
            human_bytes(summary.skipped_bytes),
        );
    }
    Ok(())
}

/// Runs `joining` (which joins the code's room first, then waits), calling
/// `show` once it has run for a moment: the code is shown once the room is
/// known to be ours, and joining is quick. Returns its result and whether
/// `show` was called.
pub(crate) async fn showing_code<T>(
    joining: impl Future<Output = T>,
    show: impl Fn(),
) -> (T, bool) {
    tokio::pin!(joining);
    let mut shown = false;
    loop {
        tokio::select! {
            result = &mut joining => return (result, shown),
            _ = tokio::time::sleep(Duration::from_millis(300)), if !shown => {
                shown = true;
                show();
            }
        }
    }
}

/// Prints the code, the receive command and the web link (once).
pub(crate) fn announce<'a>(
    args: &'a SendArgs,
    code: &'a Code,
    meeting: &'a Meeting,
    files: usize,
    dirs: usize,
    bytes: u64,
) -> impl Fn() + 'a {
    move || {
        let swarm = args.receivers > 1;
        let command = meeting.receive_command(code, swarm);
        let link = meeting.web_link(code, swarm);
        if args.json {
            println!(
                "{}",
                json!({"event": "code", "code": code.as_str(), "receive_command": command, "web_link": link})
            );
        } else {
            println!("Offering {} ({})", counts(files, dirs), human_bytes(bytes));
            println!("Code: {code}");
            if swarm {
                println!("On each of the {} receiving computers run:", args.receivers);
            } else {
                println!("On the other computer run:");
            }
            println!("  {command}");
            if let Some(link) = link {
                println!("or open {link}");
            }
            if matches!(meeting, Meeting::Lan(_)) {
                println!(
                    "(on this network; for a computer elsewhere, run signaling-server where both reach it and pass --server)"
                );
            }
            if swarm {
                println!("Waiting for the receivers…");
            } else {
                println!("Waiting for the receiver…");
            }
        }
    }
}

/// `http(s)://HOST/#code=CODE` (`#swarm=CODE` for a swarm) for a
/// `ws(s)://HOST/...` server URL.
pub(crate) fn web_link(server: &str, code: &Code, swarm: bool) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = server.strip_prefix("wss://") {
        ("https", rest)
    } else {
        ("http", server.strip_prefix("ws://")?)
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|h| !h.is_empty())?;
    let key = if swarm { "swarm" } else { "code" };
    Some(format!("{scheme}://{host}/#{key}={code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_link_follows_the_server() {
        let code = Code::parse("7-apple-tiger").unwrap();
        assert_eq!(
            web_link("ws://127.0.0.1:8080/ws", &code, false).as_deref(),
            Some("http://127.0.0.1:8080/#code=7-apple-tiger")
        );
        assert_eq!(
            web_link("wss://example.org/ws", &code, false).as_deref(),
            Some("https://example.org/#code=7-apple-tiger")
        );
        assert_eq!(
            web_link("wss://example.org/ws", &code, true).as_deref(),
            Some("https://example.org/#swarm=7-apple-tiger")
        );
        assert_eq!(web_link("http://x/ws", &code, false), None);
    }
}
