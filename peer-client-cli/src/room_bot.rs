//! What the room bots (`echo`, `bench-peer`) share: join a room, hand every
//! event to the bot, leave on Ctrl-C or when the session ends.

use anyhow::Context;
use peer_client::{Event, Session, SessionHandle};

use crate::args::RoomArgs;

/// Joins the room `args` names, announces the bot as `role`, and hands
/// every event to `on_event` until Ctrl-C or the end of the session.
pub(crate) async fn serve(
    args: &RoomArgs,
    role: &str,
    mut on_event: impl AsyncFnMut(&SessionHandle, Event),
) -> anyhow::Result<()> {
    let mut session = Session::connect(args.session_config())
        .await
        .context("cannot join the room")?;
    eprintln!("{role} in room {:?} as {}", args.room, session.id());
    let handle = session.handle();
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            event = session.next_event() => event,
            _ = &mut shutdown => break,
        };
        let Some(event) = event else { break };
        on_event(&handle, event).await;
    }
    session.close().await;
    Ok(())
}
