//! `send --receivers N` and `receive --swarm`: one sender, several
//! receivers that pass pieces on to each other (`peer_client::swarm`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::lan::find_senders;
use crate::progress::{counts, human_bytes, megabytes_per_second};
use crate::receive::{DISCOVERY_WAIT, ReceiveArgs, ask, show};
use crate::send::{CODE_ATTEMPTS, Meeting, SendArgs, announce, showing_code};
use peer_client::PeerId;
use peer_client::auth::{Code, Role};
use peer_client::swarm::{Decision, Hashed, PeerNews, SwarmProgress, join, seed};
use peer_client::transfer::{Manifest, ReceiveOptions, Source, TransferError};

/// Offers `source` to `args.receivers` receivers at once.
pub(crate) async fn send(
    args: &SendArgs,
    source: Source,
    meeting: &mut Meeting,
) -> anyhow::Result<()> {
    if !args.json {
        eprintln!("Hashing {}…", human_bytes(source.manifest.total_bytes()));
    }
    let files = Hashed::new(source).await?;
    let manifest = files.manifest();
    let chosen = args.code.as_deref().map(Code::parse).transpose()?;
    let mut progress = SwarmBar::new(args.json, Role::Sender);
    let mut attempt = 0;
    loop {
        let code = meeting.draw(chosen.as_ref(), &mut attempt).await?;
        let config = args.net.session_config(&meeting.session_url(), "");
        let show_code = announce(
            args,
            &code,
            meeting,
            manifest.files(),
            manifest.dirs(),
            manifest.total_bytes(),
        );
        progress.length(manifest.total_bytes().saturating_mul(args.receivers));
        let seeding = seed(
            config,
            &code,
            &files,
            args.receivers as usize,
            chosen.is_none(),
            &mut progress,
        );
        let (result, _) = showing_code(seeding, &show_code).await;
        let summary = match result {
            Err(TransferError::NameplateInUse { .. })
                if chosen.is_none() && attempt < CODE_ATTEMPTS =>
            {
                continue;
            }
            other => other.context("sending to the swarm stopped")?,
        };
        progress.bar.finish_and_clear();
        let share = summary.uploaded_bytes as f64 / summary.total_bytes.max(1) as f64;
        if args.json {
            println!(
                "{}",
                json!({
                    "event": "done",
                    "receivers": args.receivers,
                    "total_bytes": summary.total_bytes,
                    "uploaded_bytes": summary.uploaded_bytes,
                    "seconds": summary.elapsed.as_secs_f64(),
                })
            );
        } else {
            println!(
                "{} receivers hold {} ({}); this computer uploaded {} ({share:.2}× the files) in {:.2} s",
                args.receivers,
                counts(manifest.files(), manifest.dirs()),
                human_bytes(summary.total_bytes),
                human_bytes(summary.uploaded_bytes),
                summary.elapsed.as_secs_f64(),
            );
        }
        return Ok(());
    }
}

/// Joins the swarm of `code` as one of its receivers.
pub(crate) async fn receive(args: &ReceiveArgs, code: &Code) -> anyhow::Result<()> {
    let servers = match &args.net.server {
        Some(server) => vec![server.clone()],
        None => {
            let nameplate = code.nameplate().to_owned();
            let senders =
                tokio::task::spawn_blocking(move || find_senders(&nameplate, DISCOVERY_WAIT))
                    .await??;
            senders.iter().flat_map(|sender| sender.urls()).collect()
        }
    };
    let options = ReceiveOptions {
        out: args.out.clone(),
        overwrite: args.overwrite,
    };
    let idle = Duration::from_secs(args.idle_timeout);
    let mut last_error = anyhow::anyhow!(
        "no sender of code number {} on this network (looked for {} s); pass --server where the sender is",
        code.nameplate(),
        DISCOVERY_WAIT.as_secs()
    );
    for server in servers {
        let mut progress = SwarmBar::new(args.json, Role::Receiver);
        let config = args.net.session_config(&server, "");
        let decide = |offer: &peer_client::swarm::ReadOffer| -> Decision {
            show(args, &offer.manifest);
            if args.yes {
                Box::pin(std::future::ready(true))
            } else {
                Box::pin(ask(args.out.clone()))
            }
        };
        match join(config, code, options.clone(), idle, decide, &mut progress).await {
            Ok(summary) => {
                progress.bar.finish_and_clear();
                let rate = megabytes_per_second(summary.received_bytes, summary.elapsed);
                if args.json {
                    println!(
                        "{}",
                        json!({
                            "event": "done",
                            "total_bytes": summary.total_bytes,
                            "received_bytes": summary.received_bytes,
                            "skipped_bytes": summary.held_bytes,
                            "uploaded_bytes": summary.uploaded_bytes,
                            "seconds": summary.elapsed.as_secs_f64(),
                            "mb_per_s": rate,
                            "out": args.out.display().to_string(),
                        })
                    );
                } else {
                    println!(
                        "Received {} into {} in {:.2} s, {rate:.1} MB/s; every piece verified (BLAKE3); {} were already here; passed {} on to other receivers",
                        human_bytes(summary.received_bytes),
                        args.out.display(),
                        summary.elapsed.as_secs_f64(),
                        human_bytes(summary.held_bytes),
                        human_bytes(summary.uploaded_bytes),
                    );
                }
                return Ok(());
            }
            Err(TransferError::Declined) => anyhow::bail!("declined; no file was written"),
            Err(err @ TransferError::NoSender { .. }) if args.net.server.is_none() => {
                last_error = err.into();
            }
            Err(err) => {
                return Err(anyhow::Error::from(err).context("receiving from the swarm stopped"));
            }
        }
    }
    Err(last_error)
}

/// Progress of a swarm peer: a bar of bytes received (or uploaded), and a
/// line per peer that joins, finishes, leaves or is dropped.
struct SwarmBar {
    bar: ProgressBar,
    json: bool,
    role: Role,
    /// Short names of peers, in the order they joined.
    names: HashMap<PeerId, String>,
    /// The last tenth of the pieces reported as held, per peer.
    tenths: HashMap<PeerId, usize>,
    finished: usize,
}

impl SwarmBar {
    fn new(json: bool, role: Role) -> Self {
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        let template = match role {
            Role::Sender => "uploaded {bytes} {binary_bytes_per_sec} {wide_msg}",
            Role::Receiver => {
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}"
            }
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            json,
            role,
            names: HashMap::new(),
            tenths: HashMap::new(),
            finished: 0,
        }
    }

    fn length(&mut self, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn name(&mut self, peer: PeerId) -> String {
        let next = self.names.len() + 1;
        self.names
            .entry(peer)
            .or_insert_with(|| format!("peer {next}"))
            .clone()
    }

    fn say(&self, text: &str) {
        if !self.json {
            self.bar.println(text);
        }
    }
}

impl SwarmProgress for SwarmBar {
    fn accepted(&mut self, manifest: &Manifest, held_bytes: u64) {
        self.bar.set_length(manifest.total_bytes());
        self.bar.set_position(held_bytes);
        self.bar.reset_eta();
    }

    fn peer(&mut self, peer: PeerId, news: PeerNews) {
        let name = self.name(peer);
        if let PeerNews::Holds { pieces, of } = news {
            // Each tenth once: a line per piece would drown the rest.
            let tenth = pieces * 10 / of.max(1);
            if self.tenths.insert(peer, tenth) == Some(tenth) {
                return;
            }
        }
        if self.json {
            let (what, detail) = match &news {
                PeerNews::Joined { role } => ("joined", role.label().to_owned()),
                PeerNews::Holds { pieces, of } => ("holds", format!("{pieces}/{of}")),
                PeerNews::Finished => ("finished", String::new()),
                PeerNews::Declined => ("declined", String::new()),
                PeerNews::Left => ("left", String::new()),
                PeerNews::Dropped(why) => ("dropped", why.clone()),
            };
            println!(
                "{}",
                json!({"event": "peer", "peer": name, "id": peer.to_string(), "news": what, "detail": detail})
            );
            return;
        }
        match news {
            PeerNews::Joined { role } => {
                self.say(&format!("{name} ({}) proved the code", role.label()))
            }
            PeerNews::Holds { .. } => {}
            PeerNews::Finished => {
                self.finished += 1;
                self.say(&format!("{name} has every piece"));
                if self.role == Role::Sender {
                    self.bar.set_message(format!("{} finished", self.finished));
                }
            }
            PeerNews::Declined => self.say(&format!("{name} declined")),
            PeerNews::Left => self.say(&format!("{name} left")),
            PeerNews::Dropped(why) => self.say(&format!("{name} was dropped: {why}")),
        }
    }

    fn received(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn uploaded(&mut self, _peer: PeerId, bytes: u64) {
        if self.role == Role::Sender {
            self.bar.inc(bytes);
        }
    }

    fn seeded(&mut self) {
        if self.json {
            println!("{}", json!({"event": "seeded"}));
        } else {
            self.say(
                "Every piece is now held by some receiver: they can finish among themselves if this computer leaves",
            );
        }
    }

    fn unavailable(&mut self, pieces: usize) {
        if self.json {
            println!("{}", json!({"event": "unavailable", "pieces": pieces}));
        } else {
            self.say(&format!(
                "{pieces} missing pieces are held by no peer in the room; waiting for one that has them"
            ));
        }
    }
}
