//! `peer-client chat`: stdin lines to every peer, received lines to stdout.

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::RoomArgs;
use peer_client::chat::ChatMessage;
use peer_client::printable;
use peer_client::{CHAT_LABEL, Event, LinkState, Payload, Session, SignalingStatus};

/// Arguments of `chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Room and connection settings.
    #[command(flatten)]
    pub room: RoomArgs,

    /// Display name shown to the others (default: the start of our peer id).
    #[arg(long)]
    pub name: Option<String>,
}

/// Longest line read from stdin, in bytes.
const MAX_LINE_BYTES: usize = 16 * 1024;

pub(crate) async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let mut session = Session::connect(args.room.session_config())
        .await
        .context("cannot join the room")?;
    let me = session.id();
    let name = args.name.unwrap_or_else(|| short(&me.to_string()));
    eprintln!("joined room {:?} as {name} ({me})", args.room.room);
    let handle = session.handle();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if line.len() > MAX_LINE_BYTES {
                        eprintln!("line too long ({} bytes, at most {MAX_LINE_BYTES}); not sent", line.len());
                        continue;
                    }
                    let frame = ChatMessage { name: name.clone(), text: line }.to_json();
                    let sent = handle.broadcast(CHAT_LABEL, Payload::Text(frame)).await;
                    if sent == 0 {
                        eprintln!("nobody is connected yet; message not sent");
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    eprintln!("cannot read stdin: {err}");
                    break;
                }
            },
            event = session.next_event() => match event {
                Some(event) => report(event),
                None => break,
            },
        }
    }
    session.close().await;
    Ok(())
}

fn report(event: Event) {
    match event {
        Event::PeerJoined(peer) => eprintln!("{} joined", short(&peer.to_string())),
        Event::PeerLeft(peer) => eprintln!("{} left", short(&peer.to_string())),
        Event::LinkState { peer, state, path } => {
            let peer = short(&peer.to_string());
            match (state, path) {
                (LinkState::Connected, Some(path)) => eprintln!("connected to {peer} ({path})"),
                (LinkState::Connected, None) => eprintln!("connected to {peer}"),
                (LinkState::Disconnected, _) => eprintln!("link to {peer} interrupted"),
                (LinkState::Failed, _) => eprintln!("link to {peer} failed"),
                (LinkState::Closed, _) => eprintln!("link to {peer} closed"),
                (LinkState::Connecting, _) => {}
            }
        }
        Event::ChannelOpen { peer, channel } => {
            eprintln!(
                "channel {:?} open with {}",
                channel.label(),
                short(&peer.to_string())
            )
        }
        Event::ChannelClosed { .. } => {}
        Event::Message {
            peer,
            label,
            payload,
        } if label == CHAT_LABEL => match payload {
            Payload::Text(text) => match ChatMessage::parse(&text) {
                Some(message) => {
                    println!("{}: {}", printable(&message.name), printable(&message.text))
                }
                None => println!("{}: {}", short(&peer.to_string()), printable(&text)),
            },
            Payload::Binary(data) => eprintln!(
                "{} sent {} bytes of binary data on chat",
                short(&peer.to_string()),
                data.len()
            ),
        },
        Event::Message { .. } => {}
        Event::Signaling(SignalingStatus::Reconnecting { reason }) => {
            eprintln!("lost the signaling server ({reason}); reconnecting; open links keep working")
        }
        Event::Signaling(SignalingStatus::Reconnected { resumed, .. }) => {
            eprintln!(
                "signaling server back ({})",
                if resumed { "resumed" } else { "new id" }
            )
        }
        Event::PeerError { peer, error } => {
            eprintln!("problem with {}: {error}", short(&peer.to_string()))
        }
    }
}

/// The first 8 characters of an id, enough to tell peers apart.
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}
