//! `peer-client echo`: a bot that sends every text message back to its sender.

use anyhow::Context;

use crate::args::RoomArgs;
use peer_client::{Event, LinkState, Payload, Session};

pub(crate) async fn run(args: RoomArgs) -> anyhow::Result<()> {
    let mut session = Session::connect(args.session_config())
        .await
        .context("cannot join the room")?;
    eprintln!("echo bot in room {:?} as {}", args.room, session.id());
    let handle = session.handle();
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            event = session.next_event() => event,
            _ = &mut shutdown => break,
        };
        match event {
            None => break,
            Some(Event::Message {
                peer,
                label,
                payload: Payload::Text(text),
            }) => {
                if let Err(err) = handle.send(peer, &label, Payload::Text(text)).await {
                    eprintln!("cannot echo to {peer}: {err}");
                }
            }
            Some(Event::LinkState {
                peer,
                state: LinkState::Connected,
                path,
            }) => {
                eprintln!(
                    "connected to {peer} ({})",
                    path.map(|p| p.to_string())
                        .unwrap_or_else(|| "unknown path".into())
                );
            }
            Some(Event::PeerLeft(peer)) => eprintln!("{peer} left"),
            Some(_) => {}
        }
    }
    session.close().await;
    Ok(())
}
