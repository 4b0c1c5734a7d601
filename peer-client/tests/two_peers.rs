//! Two peers meet through a real signaling server and talk both ways over
//! the `chat` channel and over a second, binary channel.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use peer_client::{Error, Event, NegotiatedChannel, Payload, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_text_and_binary_both_ways() {
    let server = TestServer::loopback();
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
    let server = TestServer::loopback();
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
    let server = TestServer::loopback();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negotiated_channel_opens_on_both_sides_beside_in_band_ones() {
    let server = TestServer::loopback();
    let negotiated = |room: &str| {
        let mut config = config(&server.url(), room);
        config.negotiated_channels = vec![NegotiatedChannel {
            label: "agreed".into(),
            id: 0,
        }];
        config
    };
    let mut first = bounded("joining", Session::connect(negotiated("agreed")))
        .await
        .unwrap();
    let mut second = bounded("joining", Session::connect(negotiated("agreed")))
        .await
        .unwrap();
    // The offering side created it before its offer, the answering side when it answered.
    let from_second = agreed_open(&mut second).await;
    let from_first = agreed_open(&mut first).await;
    let (first_id, second_id) = (first.id(), second.id());
    delivered_and_acknowledged(
        &from_second,
        second_id,
        &mut first,
        "over the agreed stream",
    )
    .await;
    delivered_and_acknowledged(&from_first, first_id, &mut second, "and back").await;

    // In-band channels from either side pick stream ids around the agreed one.
    let (first_side, second_side) = ((first.handle(), first_id), (second.handle(), second_id));
    in_band_round_trip(&first_side, &mut second, "one").await;
    in_band_round_trip(&second_side, &mut first, "two").await;
    delivered_and_acknowledged(&from_first, first_id, &mut second, "still there").await;
}

/// Sends `text` on `channel` (labelled `agreed`), sees it arrive at `receiver` from
/// `sender`, and waits until the channel holds nothing unacknowledged.
async fn delivered_and_acknowledged(
    channel: &peer_client::Channel,
    sender: peer_client::PeerId,
    receiver: &mut Session,
    text: &str,
) {
    channel.send(Payload::Text(text.into())).await.unwrap();
    assert_eq!(text_on(receiver, "agreed").await, (sender, text.into()));
    bounded("the acknowledgement", async {
        while channel.queued_bytes().await > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Opens an in-band channel `label` from `opener` to `other` and sends a line over it.
async fn in_band_round_trip(
    (opener, opener_id): &(peer_client::SessionHandle, peer_client::PeerId),
    other: &mut Session,
    label: &str,
) {
    let channel = bounded("open_channel", opener.open_channel(other.id(), label))
        .await
        .unwrap();
    wait_for(other, "the in-band channel", |event| {
        matches!(event, Event::ChannelOpen { ref channel, .. } if channel.label() == label)
            .then_some(())
    })
    .await;
    channel.send(Payload::Text(label.into())).await.unwrap();
    assert_eq!(text_on(other, label).await, (*opener_id, label.into()));
}

/// Waits for the channel labelled `agreed` to open.
async fn agreed_open(session: &mut Session) -> peer_client::Channel {
    wait_for(session, "the negotiated channel", |event| match event {
        Event::ChannelOpen { channel, .. } if channel.label() == "agreed" => Some(channel),
        _ => None,
    })
    .await
}
