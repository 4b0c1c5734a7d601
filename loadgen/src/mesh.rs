//! Rooms whose clients negotiate with each other as browsers do.
//!
//! Clients join one after another. As the project's convention says, each
//! client sends an offer to every peer listed in its `welcome`, followed by
//! its candidates; a client that receives an offer answers it and sends its
//! own candidates. A session is one pair of clients: offer, answer and
//! `candidates` candidates each way. Every payload carries a tag
//! `<room>:<src>:<dst>:<seq>` and is otherwise fixed, so the receiver checks
//! room, addressee, sender id, order and the exact bytes.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use futures_util::future::join_all;
use signaling_protocol::{PeerId, ServerMessage};
use tokio::time::{Instant, timeout_at};

use crate::client::{Sources, join, signal_frame};
use crate::inbound::{self, IdText, Inbound, clip, id_text};
use crate::integrity::{Integrity, get_digits};
use crate::ws::{Conn, Target};

/// The fixed parts of the signals of a session.
pub struct Payloads {
    offer: String,
    answer: String,
    candidates: Vec<String>,
}

impl Payloads {
    /// An offer and an answer of about `sdp_bytes` each, and `candidates` candidates.
    pub fn new(sdp_bytes: usize, candidates: usize) -> Self {
        let description = |kind: &str| {
            let sdp = synthetic_sdp(kind, sdp_bytes);
            let sdp = serde_json::Value::String(sdp).to_string();
            format!(r#","description":{{"type":"{kind}","sdp":{sdp}}}}}"#)
        };
        let candidates = (0..candidates)
            .map(|n| {
                format!(
                    r#","candidate":{{"candidate":"candidate:{n} 1 udp 2122260223 127.0.0.1 {} typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"lgUf"}}}}"#,
                    50_000 + n
                )
            })
            .collect();
        Self {
            offer: description("offer"),
            answer: description("answer"),
            candidates,
        }
    }

    /// Signals each way per session.
    pub fn per_session(&self) -> usize {
        1 + self.candidates.len()
    }

    /// The fixed tail of signal number `seq` from an offerer (or an answerer).
    fn tail(&self, seq: usize, from_offerer: bool) -> Option<&str> {
        match seq {
            0 if from_offerer => Some(&self.offer),
            0 => Some(&self.answer),
            n => self.candidates.get(n - 1).map(String::as_str),
        }
    }
}

/// Filler SDP of about `bytes` bytes, shaped like a browser's data-channel-only offer or answer.
fn synthetic_sdp(kind: &str, bytes: usize) -> String {
    let mut sdp = format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:lgUf\r\na=ice-pwd:loadgenloadgenloadgenlo\r\na=ice-options:trickle\r\n\
         a=setup:{}\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n",
        if kind == "offer" { "actpass" } else { "active" }
    );
    let mut n = 0;
    while sdp.len() + 100 < bytes {
        sdp.push_str(&format!(
            "a=fingerprint:sha-256 {n:02X}:5D:3A:E9:1B:44:7C:0F:8A:22:91:6E:D4:B8:03:57:C1:AA:90:3F:6B:E2:18:74:DD:0C:95:4F:A1:36:E8:7B\r\n"
        ));
        n += 1;
    }
    sdp
}

/// Length of `{"lg":"` that starts every payload.
const TAG_AT: usize = 7;
/// Length of the tag `RRRRRRRRRRRR:SSS:DDD:QQQ`.
const TAG_LEN: usize = 24;

fn tag(room: u64, src: usize, dst: usize, seq: usize) -> String {
    format!("{room:012}:{src:03}:{dst:03}:{seq:03}")
}

/// Reads a payload's tag: (room, src, dst, seq), and the rest after it.
fn read_tag(data: &[u8]) -> Option<(u64, usize, usize, usize, &[u8])> {
    let rest = data.strip_prefix(br#"{"lg":""#)?;
    let tag = rest.get(..TAG_LEN)?;
    if tag[12] != b':' || tag[16] != b':' || tag[20] != b':' || rest.get(TAG_LEN) != Some(&b'"') {
        return None;
    }
    let room = get_digits(&tag[..12])?;
    let src = get_digits(&tag[13..16])? as usize;
    let dst = get_digits(&tag[17..20])? as usize;
    let seq = get_digits(&tag[21..24])? as usize;
    Some((room, src, dst, seq, &data[TAG_AT + TAG_LEN + 1..]))
}

/// One client of a room.
pub struct Member {
    conn: Conn,
    id: PeerId,
}

/// A room of clients that joined in order.
pub struct Room {
    number: u64,
    members: Vec<Member>,
}

/// What negotiating a room gave.
#[derive(Default)]
pub struct Outcome {
    /// Every signal accounted for.
    pub tally: Integrity,
    /// Pairs of clients that received everything from each other.
    pub sessions: u64,
}

/// Connects `size` clients into room number `number`, one after another.
pub async fn open_room(
    target: &Target,
    sources: Sources,
    run: u64,
    number: u64,
    size: usize,
) -> Result<Room> {
    let name = format!("mesh-{run}-{number}");
    let mut members: Vec<Member> = Vec::with_capacity(size);
    for i in 0..size {
        let source = sources.pick(number as usize * size + i);
        let mut conn = Conn::connect(target, source).await?;
        let joined = join(&mut conn, &name).await?;
        let before: Vec<PeerId> = members.iter().map(|m| m.id).collect();
        ensure!(
            joined.peers == before,
            "welcome in {name} listed {:?}, expected {before:?}",
            joined.peers
        );
        members.push(Member {
            conn,
            id: joined.id,
        });
    }
    Ok(Room { number, members })
}

/// Lets every pair of the room negotiate; returns once all signals arrived or at `deadline`.
pub async fn negotiate(room: &mut Room, payloads: &Payloads, deadline: Instant) -> Outcome {
    let ids: Vec<PeerId> = room.members.iter().map(|m| m.id).collect();
    let texts: Vec<IdText> = ids.iter().map(id_text).collect();
    let number = room.number;
    let results = join_all(room.members.iter_mut().enumerate().map(|(me, member)| {
        let peers = Peers {
            ids: &ids,
            texts: &texts,
            me,
            room: number,
        };
        negotiate_member(&mut member.conn, peers, payloads, deadline)
    }))
    .await;
    let mut outcome = Outcome::default();
    let per = payloads.per_session();
    for i in 0..results.len() {
        for j in i + 1..results.len() {
            if results[i].1[j] == per && results[j].1[i] == per {
                outcome.sessions += 1;
            }
        }
    }
    for (tally, _) in results {
        outcome.tally.merge(tally);
    }
    outcome
}

/// Closes every client of the room.
pub async fn close_room(room: Room) -> Integrity {
    let closed = join_all(room.members.into_iter().map(|member| async move {
        tokio::time::timeout(Duration::from_secs(10), member.conn.close(true)).await
    }))
    .await;
    let mut tally = Integrity::default();
    for result in closed {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tally.fault(format!("closing: {err:#}")),
            Err(_) => tally.fault("the server did not close within 10 s"),
        }
    }
    tally
}

/// A member's view of its room.
struct Peers<'a> {
    ids: &'a [PeerId],
    texts: &'a [IdText],
    me: usize,
    room: u64,
}

/// Queues the signals of one side of a session: description, then candidates.
fn queue_side(conn: &mut Conn, peers: &Peers<'_>, to: usize, payloads: &Payloads, offerer: bool) {
    for seq in 0..payloads.per_session() {
        let Some(tail) = payloads.tail(seq, offerer) else {
            continue;
        };
        let data = format!(r#"{{"lg":"{}"{tail}"#, tag(peers.room, peers.me, to, seq));
        conn.wr.text(signal_frame(&peers.ids[to], &data).as_bytes());
    }
}

/// One client's part: offers to earlier peers, answers later ones, checks every arrival.
/// Returns its tally and how many signals it accepted from each peer.
async fn negotiate_member(
    conn: &mut Conn,
    peers: Peers<'_>,
    payloads: &Payloads,
    deadline: Instant,
) -> (Integrity, Vec<usize>) {
    let size = peers.ids.len();
    let per = payloads.per_session();
    let me = peers.me;
    let mut tally = Integrity::default();
    let mut accepted = vec![0usize; size];
    let mut next = vec![0usize; size];
    let expected = per * (size - 1);
    let mut got = 0;
    let result: Result<()> = async {
        for to in 0..me {
            queue_side(conn, &peers, to, payloads, true);
            tally.sent += per as u64;
        }
        conn.flush().await?;
        while got < expected {
            let Ok(read) = timeout_at(deadline, conn.fill()).await else {
                tally.fault(format!(
                    "room {} client {me}: {} signal(s) missing at the deadline",
                    peers.room,
                    expected - got
                ));
                return Ok(());
            };
            if read? == 0 {
                bail!("server closed the connection");
            }
            let mut answer_to = Vec::new();
            while let Some(text) = conn.next_text(&mut tally)? {
                let (from, data) = match inbound::read(text)? {
                    Inbound::Signal { from, data } => (from, data),
                    Inbound::Other(ServerMessage::PeerJoined { peer_id })
                    | Inbound::Other(ServerMessage::PeerLeft { peer_id }) => {
                        if !peers.ids.contains(&peer_id) {
                            tally.fault(format!("peer {peer_id} from another room announced"));
                        }
                        continue;
                    }
                    Inbound::Other(ServerMessage::Error { code, .. }) => {
                        tally.server_error(code);
                        continue;
                    }
                    Inbound::Other(other) => {
                        tally.fault(format!("unexpected {}", clip(&other.to_json())));
                        continue;
                    }
                };
                let Some((room, src, dst, seq, rest)) = read_tag(&data) else {
                    tally.corrupt += 1;
                    continue;
                };
                if room != peers.room
                    || dst != me
                    || src >= size
                    || src == me
                    || peers.texts[src] != from
                {
                    tally.misrouted += 1;
                    continue;
                }
                // A peer that joined later than this one is the offerer.
                if payloads.tail(seq, src > me).map(str::as_bytes) != Some(rest) {
                    tally.corrupt += 1;
                    continue;
                }
                if seq < next[src] {
                    tally.duplicated += 1;
                    continue;
                }
                if seq > next[src] {
                    tally.out_of_order += 1;
                }
                next[src] = seq + 1;
                accepted[src] += 1;
                got += 1;
                tally.received += 1;
                if seq == 0 && src > me {
                    answer_to.push(src);
                }
            }
            for to in answer_to {
                queue_side(conn, &peers, to, payloads, false);
                tally.sent += per as u64;
            }
            conn.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(err) = result {
        tally.fault(format!("room {} client {me}: {err:#}", peers.room));
    }
    tally.lost += (expected - got) as u64;
    (tally, accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_valid_signal_data_of_the_asked_size() {
        let payloads = Payloads::new(2000, 8);
        assert_eq!(payloads.per_session(), 9);
        for (seq, offerer) in [(0, true), (0, false), (3, true), (8, false)] {
            let tail = payloads.tail(seq, offerer).unwrap();
            let data = format!(r#"{{"lg":"{}"{tail}"#, tag(42, 1, 0, seq));
            let value: serde_json::Value = serde_json::from_str(&data).unwrap();
            if seq == 0 {
                let kind = if offerer { "offer" } else { "answer" };
                assert_eq!(value["description"]["type"], kind);
                let sdp = value["description"]["sdp"].as_str().unwrap();
                assert!((1900..=2000).contains(&sdp.len()), "{}", sdp.len());
            } else {
                assert!(value["candidate"]["candidate"].is_string());
            }
            let (room, src, dst, got_seq, rest) = read_tag(data.as_bytes()).unwrap();
            assert_eq!((room, src, dst, got_seq), (42, 1, 0, seq));
            assert_eq!(rest, tail.as_bytes());
        }
        assert!(payloads.tail(9, true).is_none());
    }

    #[test]
    fn malformed_tags_are_refused() {
        assert!(read_tag(br#"{"lg":"000000000042:001:000"}"#).is_none());
        assert!(read_tag(br#"{"lg":"000000000042-001:000:001"}"#).is_none());
        assert!(read_tag(br#"{"other":1}"#).is_none());
    }
}
