//! `peer-client echo`: a bot that sends every text message back to its sender.

use crate::args::RoomArgs;
use crate::room_bot;
use peer_client::{Event, LinkState, Payload, SessionHandle};

pub(crate) async fn run(args: RoomArgs) -> anyhow::Result<()> {
    room_bot::serve(
        &args,
        "echo bot",
        async |handle: &SessionHandle, event| match event {
            Event::Message {
                peer,
                label,
                payload: Payload::Text(text),
            } => {
                if let Err(err) = handle.send(peer, &label, Payload::Text(text)).await {
                    eprintln!("cannot echo to {peer}: {err}");
                }
            }
            Event::LinkState {
                peer,
                state: LinkState::Connected,
                path,
            } => {
                eprintln!(
                    "connected to {peer} ({})",
                    path.map(|p| p.to_string())
                        .unwrap_or_else(|| "unknown path".into())
                );
            }
            Event::PeerLeft(peer) => eprintln!("{peer} left"),
            _ => {}
        },
    )
    .await
}
