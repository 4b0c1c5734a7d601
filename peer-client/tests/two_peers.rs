//! Two peers meet through a real signaling server and talk both ways over
//! the `chat` channel and over a second, binary channel.

mod common;

use bytes::Bytes;
use common::*;
use peer_client::{Error, Event, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_text_and_binary_both_ways() {
    let server = TestServer::start().await;
    let mut first = join(&server.url(), "pair").await;
    let mut second = join(&server.url(), "pair").await;
    assert_ne!(first.id(), second.id());

    // The later peer offers and creates `chat`; both sides see it open.
    assert_eq!(chat_open(&mut second, None).await, first.id());
    assert_eq!(chat_open(&mut first, None).await, second.id());

    let (a, b) = (first.handle(), second.handle());
    a.send(
        second.id(),
        "chat",
        Payload::Text("hello from first".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        text_on(&mut second, "chat").await,
        (first.id(), "hello from first".into())
    );
    b.send(first.id(), "chat", Payload::Text("ünïcödé back ✓".into()))
        .await
        .unwrap();
    assert_eq!(
        text_on(&mut first, "chat").await,
        (second.id(), "ünïcödé back ✓".into())
    );

    // Another channel, opened by the answering side, carries a large binary message.
    let files = bounded("open_channel", b.open_channel(first.id(), "files"))
        .await
        .unwrap();
    wait_for(&mut first, "the files channel", |e| {
        matches!(e, Event::ChannelOpen { ref channel, .. } if channel.label() == "files")
            .then_some(())
    })
    .await;
    let blob: Bytes = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert!(files.max_message_bytes() >= 64 * 1024);
    let chunk = blob.slice(..files.max_message_bytes().min(blob.len()));
    files.send(Payload::Binary(chunk.clone())).await.unwrap();
    let got = wait_for(&mut first, "a binary message", |e| match e {
        Event::Message {
            label,
            payload: Payload::Binary(data),
            ..
        } if label == "files" => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(got, chunk);

    // A message over the limit is refused with a clear error.
    let too_big = Payload::Binary(Bytes::from(vec![0u8; files.max_message_bytes() + 1]));
    match files.send(too_big).await {
        Err(Error::MessageTooLarge { size, max }) => assert_eq!(size, max + 1),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    // Unknown labels and unknown peers are errors, not silence.
    assert!(matches!(
        a.send(second.id(), "nope", Payload::Text("x".into())).await,
        Err(Error::NoSuchChannel { .. })
    ));
    let stranger = peer_client::PeerId::random();
    assert!(matches!(
        a.send(stranger, "chat", Payload::Text("x".into())).await,
        Err(Error::PeerGone(p)) if p == stranger
    ));

    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_reports_a_direct_path() {
    let server = TestServer::start().await;
    let mut first = join(&server.url(), "path").await;
    let second = join(&server.url(), "path").await;
    let path = wait_for(&mut first, "a connected link", |e| match e {
        Event::LinkState {
            state: peer_client::LinkState::Connected,
            path,
            ..
        } => Some(path),
        _ => None,
    })
    .await;
    assert_eq!(path, Some(peer_client::LinkPath::Direct));
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_see_the_same_dtls_fingerprints_crosswise() {
    let server = TestServer::start().await;
    let mut first = join(&server.url(), "fp").await;
    let mut second = join(&server.url(), "fp").await;
    chat_open(&mut first, None).await;
    chat_open(&mut second, None).await;
    let a = first.handle().fingerprints(second.id()).await.unwrap();
    let b = second.handle().fingerprints(first.id()).await.unwrap();
    assert_eq!(a.local, b.remote);
    assert_eq!(a.remote, b.local);
    assert_ne!(a.local, a.remote);
    assert!(a.local.starts_with("sha-256 "), "{a:?}");
    assert!(matches!(
        first
            .handle()
            .fingerprints(peer_client::PeerId::random())
            .await,
        Err(Error::PeerGone(_))
    ));
}
