//! Links whose DTLS handshake fails, over a real UDP middlebox on loopback.
//!
//! Two real links negotiate through a relay that rewrites every candidate to
//! a port of the middlebox, so all their datagrams pass through it. The
//! middlebox drops DTLS records (UDP payloads whose first byte is 20..=63,
//! RFC 7983) bound for the offering side's chosen addresses: its DTLS client
//! never hears the server and runs out of retransmissions.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::negotiator::MAX_REBUILDS;
use super::tests::{chat_both_ways, link};
use super::*;
use crate::link_state::LinkState;
use crate::signal::IceCandidate;

/// Where the middlebox drops DTLS records.
#[derive(Clone, Copy)]
enum Block {
    /// To the offering side's first connection only; later ones pass.
    FirstConnection,
    /// To every connection of the offering side.
    Always,
}

/// A UDP middlebox: one port ("face") per real address, so a datagram from
/// `src` to the face of `dst` leaves the face of `src` towards `dst`.
struct Middlebox {
    faces: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    /// Real addresses of the offering side's candidates, in arrival order.
    offerer_addrs: Mutex<Vec<SocketAddr>>,
    /// Addresses DTLS records must not reach.
    blocked: Mutex<HashSet<SocketAddr>>,
    block: Block,
    dropped: std::sync::atomic::AtomicU64,
}

impl Middlebox {
    fn new(block: Block) -> Arc<Self> {
        Arc::new(Self {
            faces: Mutex::default(),
            offerer_addrs: Mutex::default(),
            blocked: Mutex::default(),
            block,
            dropped: Default::default(),
        })
    }

    /// The face standing for `real`, created (with its forwarding task) on first use.
    fn face(self: &Arc<Self>, real: SocketAddr) -> SocketAddr {
        let mut faces = self.faces.lock().unwrap();
        if let Some(face) = faces.get(&real) {
            return face.local_addr().unwrap();
        }
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_socket.set_nonblocking(true).unwrap();
        let socket = Arc::new(UdpSocket::from_std(std_socket).unwrap());
        let addr = socket.local_addr().unwrap();
        faces.insert(real, Arc::clone(&socket));
        let middlebox = Arc::clone(self);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((len, src)) = socket.recv_from(&mut buf).await {
                let payload = &buf[..len];
                let dtls = matches!(payload.first(), Some(20..=63));
                if dtls && middlebox.blocked.lock().unwrap().contains(&real) {
                    middlebox
                        .dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                middlebox.face(src);
                let out = middlebox.faces.lock().unwrap().get(&src).cloned();
                if let Some(out) = out {
                    let _ = out.send_to(payload, real).await;
                }
            }
        });
        addr
    }

    /// Rewrites a candidate's address to the face of that address.
    fn rewrite(self: &Arc<Self>, candidate: &mut IceCandidate, from_offerer: bool) {
        let mut fields: Vec<String> = candidate
            .candidate
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let Some(real) = fields
            .get(4..6)
            .and_then(|f| format!("{}:{}", f[0], f[1]).parse::<SocketAddr>().ok())
        else {
            return;
        };
        if from_offerer {
            let mut addrs = self.offerer_addrs.lock().unwrap();
            if !addrs.contains(&real) {
                addrs.push(real);
                let first = addrs.len() == 1;
                if first || matches!(self.block, Block::Always) {
                    self.blocked.lock().unwrap().insert(real);
                }
            }
        }
        let face = self.face(real);
        fields[4] = face.ip().to_string();
        fields[5] = face.port().to_string();
        candidate.candidate = fields.join(" ");
    }
}

/// Delivers signals to `to` with every candidate routed through `middlebox`
/// (candidates inside descriptions are dropped; they trickle anyway).
fn relay(
    mut signals: mpsc::Receiver<Outbound>,
    to: Arc<PeerLink>,
    middlebox: Arc<Middlebox>,
    from_offerer: bool,
) {
    tokio::spawn(async move {
        while let Some(out) = signals.recv().await {
            let signal = match out.signal {
                PeerSignal::Candidate(Some(mut candidate)) => {
                    middlebox.rewrite(&mut candidate, from_offerer);
                    PeerSignal::Candidate(Some(candidate))
                }
                PeerSignal::Description(mut description) => {
                    description.sdp = description
                        .sdp
                        .split_inclusive('\n')
                        .filter(|line| !line.starts_with("a=candidate:"))
                        .collect();
                    PeerSignal::Description(description)
                }
                other => other,
            };
            to.deliver(signal);
        }
    });
}

/// Two linked peers whose datagrams cross `middlebox`; the first offers.
async fn pair(
    middlebox: &Arc<Middlebox>,
) -> (
    (Arc<PeerLink>, mpsc::Receiver<Event>),
    (Arc<PeerLink>, mpsc::Receiver<Event>),
) {
    let (a, b) = (PeerId::random(), PeerId::random());
    let (link_a, out_a, events_a) = link(a, b, true).await;
    let (link_b, out_b, events_b) = link(b, a, false).await;
    relay(out_a, Arc::clone(&link_b), Arc::clone(middlebox), true);
    relay(out_b, Arc::clone(&link_a), Arc::clone(middlebox), false);
    ((link_a, events_a), (link_b, events_b))
}

/// Waits up to `limit` for the chat channel to open; fails on a link failure.
async fn chat_opens(events: &mut mpsc::Receiver<Event>, limit: Duration) -> Channel {
    let wait = async {
        while let Some(event) = events.recv().await {
            match event {
                Event::ChannelOpen { channel, .. } => return channel,
                Event::ChannelClosed { label, .. } => panic!("channel {label} closed"),
                Event::PeerError { error, .. } => panic!("link error: {error}"),
                _ => {}
            }
        }
        panic!("link ended before a channel opened");
    };
    tokio::time::timeout(limit, wait)
        .await
        .expect("the chat channel opens in time")
}

/// Waits up to `limit` for the link to report Failed and an error; returns the error.
async fn link_fails(events: &mut mpsc::Receiver<Event>, limit: Duration) -> String {
    let wait = async {
        let mut failed = false;
        while let Some(event) = events.recv().await {
            match event {
                Event::LinkState {
                    state: LinkState::Failed,
                    ..
                } => failed = true,
                Event::PeerError { error, .. } if failed => return error,
                Event::ChannelOpen { .. } => panic!("a channel opened through a blocked path"),
                _ => {}
            }
        }
        panic!("link ended without failing");
    };
    tokio::time::timeout(limit, wait)
        .await
        .expect("the link reports its failure in time")
}

/// The first DTLS handshake cannot complete; the link starts over on new
/// connections and comes up, and the channel carries messages both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dtls_handshake_starts_over_and_connects() {
    let middlebox = Middlebox::new(Block::FirstConnection);
    let started = Instant::now();
    let ((_link_a, mut events_a), (_link_b, mut events_b)) = pair(&middlebox).await;
    let chat_a = chat_opens(&mut events_a, Duration::from_secs(30)).await;
    let chat_b = chat_opens(&mut events_b, Duration::from_secs(15)).await;
    eprintln!(
        "chat open after {:?} ({} DTLS records dropped)",
        started.elapsed(),
        middlebox.dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(middlebox.dropped.load(std::sync::atomic::Ordering::Relaxed) > 0);
    chat_both_ways(&chat_a, &chat_b, &mut events_a, &mut events_b).await;
}

/// No DTLS handshake can ever complete: both sides report the link failed,
/// with an error, within a bound instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtls_handshake_that_never_completes_fails_the_link() {
    let middlebox = Middlebox::new(Block::Always);
    let started = Instant::now();
    let ((_link_a, mut events_a), (_link_b, mut events_b)) = pair(&middlebox).await;
    let error_a = link_fails(&mut events_a, Duration::from_secs(45)).await;
    let failed_a = started.elapsed();
    let error_b = link_fails(&mut events_b, Duration::from_secs(30)).await;
    eprintln!(
        "offerer failed after {failed_a:?}: {error_a}; answerer after {:?}: {error_b}",
        started.elapsed()
    );
    assert!(error_a.contains("DTLS handshake failed"), "{error_a}");
    assert_eq!(
        middlebox.offerer_addrs.lock().unwrap().len(),
        MAX_REBUILDS as usize + 1,
        "one connection per attempt"
    );
}
