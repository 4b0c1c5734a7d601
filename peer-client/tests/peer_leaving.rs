//! A peer that leaves is reported, its channels close, and sending to it is
//! a `PeerGone` error; the others stay connected.

mod common;

use common::*;
use peer_client::{Error, Event, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_peer_is_reported_and_others_stay() {
    let server = TestServer::loopback();
    let mut stays = join(&server.url(), "leave").await;
    let mut also = join(&server.url(), "leave").await;
    let mut leaves = join(&server.url(), "leave").await;
    let leaver = leaves.id();
    for session in [&mut stays, &mut also, &mut leaves] {
        chat_open_to(session, 2).await;
    }

    leaves.close().await;
    wait_for(&mut stays, "peer_left", |e| {
        matches!(e, Event::PeerLeft(p) if p == leaver).then_some(())
    })
    .await;
    let handle = stays.handle();
    bounded("the channel map to forget the peer", async {
        while handle.channel(leaver, "chat").is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(matches!(
        handle.send(leaver, "chat", Payload::Text("anyone?".into())).await,
        Err(Error::PeerGone(p)) if p == leaver
    ));

    // The remaining pair still talks.
    handle
        .send(also.id(), "chat", Payload::Text("still here".into()))
        .await
        .unwrap();
    assert_eq!(text_on(&mut also, "chat").await.1, "still here");
}
