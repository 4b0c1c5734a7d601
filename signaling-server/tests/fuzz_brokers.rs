//! The same random operations against both brokers: the in-memory one (its
//! registry is checked against a model in `fuzz_registry.rs`) and the Redis
//! one on a real `redis-server` started by the test. After every operation
//! both must have answered alike (success, or the same error code about the
//! same peer) and delivered the same frames to the same connections, in the
//! same order, peer ids and resume tokens read as "the n-th peer" and "the
//! n-th token". So the room state machine written in Lua follows the one in
//! Rust: joins, resumes, room and peer limits, signals queued for absent
//! peers within their bounds, leaves and disconnects.
//!
//! Time does not pass here (no peer's grace period ends); expiry on Redis is
//! covered by `redis_scale_out.rs`. Few cases by default; `PROPTEST_CASES=200
//! cargo nextest run -p signaling-server --test fuzz_brokers` for a longer run,
//! `FUZZ_TRACE=1` to print every step and both answers.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;
use signaling_protocol::{PeerId, ServerMessage, SignalData};
use signaling_server::Config;
use signaling_server::broker::{Broker, BrokerSettings, ConnHandle};
use signaling_server::ice::IceConfig;
use signaling_server::metrics::Metrics;
use signaling_server::outbox::OutboxBudget;
use signaling_server::registry::RegistryLimits;
use test_support::{RedisCluster, RedisServer};
use tokio_util::sync::CancellationToken;

/// Room names: four valid ones (more than `max_rooms`) and two invalid ones.
const ROOMS: [&str; 6] = ["a", "b", "c", "d", "", "bad\nname"];
/// Longest wait for the Redis broker's frames to arrive.
const SETTLE: Duration = Duration::from_secs(3);

fn settings() -> BrokerSettings {
    BrokerSettings {
        registry: RegistryLimits {
            max_peers_per_room: 3,
            max_rooms: 3,
            resume_grace: Duration::from_secs(600),
            max_queued_signals: 4,
            max_queued_bytes: 600,
            // Which queue a full server-wide budget evicts first is not the
            // same choice in both brokers; each one's own tests cover it.
            max_absent_queue_bytes: usize::MAX,
        },
        limits: Config::default().limits(),
        ice: IceConfig::new(vec!["stun:stun.test:3478".into()], None),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A new connection joins a room, maybe resuming a known peer.
    Join {
        room: usize,
        resume: Option<prop::sample::Index>,
    },
    /// A known peer signals another, on its own or a wrong connection.
    Signal {
        from: prop::sample::Index,
        to: prop::sample::Index,
        size: usize,
        wrong_conn: bool,
    },
    /// A known peer leaves.
    Leave { peer: prop::sample::Index },
    /// A known peer's connection drops.
    Disconnect { peer: prop::sample::Index },
}

fn op() -> impl Strategy<Value = Op> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        3 => (0..ROOMS.len(), prop::option::weighted(0.3, index()))
            .prop_map(|(room, resume)| Op::Join { room, resume }),
        6 => (index(), index(), prop_oneof![3 => 0usize..16, 1 => 0usize..200], prop::bool::weighted(0.1))
            .prop_map(|(from, to, size, wrong_conn)| Op::Signal { from, to, size, wrong_conn }),
        1 => index().prop_map(|peer| Op::Leave { peer }),
        2 => index().prop_map(|peer| Op::Disconnect { peer }),
    ]
}

fn signal_data(size: usize) -> SignalData {
    serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(size)))
        .expect("a JSON string")
}

/// One broker under test, with its connections and what its ids mean.
struct Side {
    broker: Arc<Broker>,
    stop: CancellationToken,
    budget: Arc<OutboxBudget>,
    /// Connections, by the test's connection number.
    conns: Vec<ConnHandle>,
    /// The test's number for each peer id this broker handed out.
    peers: HashMap<PeerId, usize>,
    /// Peer ids by the test's number.
    ids: Vec<PeerId>,
    /// Resume tokens by the number of the peer they belong to.
    tokens: HashMap<usize, String>,
}

impl Side {
    fn new(broker: Broker) -> Self {
        let broker = Arc::new(broker);
        let stop = CancellationToken::new();
        let running = Arc::clone(&broker);
        let until = stop.clone();
        tokio::spawn(async move { running.run_expiry(until).await });
        Self {
            broker,
            stop,
            budget: OutboxBudget::new(usize::MAX),
            conns: Vec::new(),
            peers: HashMap::new(),
            ids: Vec::new(),
            tokens: HashMap::new(),
        }
    }

    fn open(&mut self) -> usize {
        self.conns
            .push(self.broker.open(1024, 1 << 20, &self.budget));
        self.conns.len() - 1
    }

    /// The test's number for `peer`, numbering a new one.
    fn number(&mut self, peer: PeerId) -> usize {
        let next = self.ids.len();
        *self.peers.entry(peer).or_insert_with(|| {
            self.ids.push(peer);
            next
        })
    }

    /// Frames queued for each connection, in the test's terms.
    fn take_frames(&mut self) -> Vec<Vec<Value>> {
        let batches: Vec<Vec<String>> = self
            .conns
            .iter()
            .map(|conn| {
                conn.outbox()
                    .take()
                    .frames
                    .iter()
                    .map(|frame| frame.as_str().to_owned())
                    .collect()
            })
            .collect();
        batches
            .into_iter()
            .map(|frames| frames.iter().map(|f| self.normalize(f)).collect())
            .collect()
    }

    /// A frame with peer ids and resume tokens replaced by the test's numbers.
    fn normalize(&mut self, frame: &str) -> Value {
        let message = ServerMessage::parse(frame).expect("a server message");
        if let ServerMessage::Welcome {
            peer_id,
            resume_token,
            ..
        } = &message
        {
            let number = self.number(*peer_id);
            self.tokens.insert(number, resume_token.clone());
        }
        let mut value: Value = serde_json::from_str(frame).unwrap();
        self.rename(&mut value);
        value
    }

    fn rename(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some((number, _)) = self.tokens.iter().find(|(_, token)| *token == text) {
                    *text = format!("token of peer {number}");
                } else if let Ok(peer) = text.parse::<PeerId>() {
                    *text = format!("peer {}", self.number(peer));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.rename(item)),
            Value::Object(fields) => fields.values_mut().for_each(|field| self.rename(field)),
            _ => {}
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What an operation answered, in the test's terms.
#[derive(Debug, PartialEq)]
enum Answer {
    Joined(usize),
    Done,
    Refused(String, Option<usize>),
}

/// The peers the test knows: which connection carries each, if any.
#[derive(Default)]
struct Known {
    /// For each peer number: its connection, and whether it is still there.
    peers: Vec<(usize, bool)>,
    conns: usize,
}

async fn apply(side: &mut Side, known: &Known, op: &Op) -> Option<Answer> {
    let pick = |index: &prop::sample::Index| {
        (!known.peers.is_empty()).then(|| index.index(known.peers.len()))
    };
    let refused = |side: &mut Side, rejection: signaling_server::broker::Rejection| {
        let peer = rejection.peer_id.map(|peer| side.number(peer));
        Answer::Refused(rejection.code.to_string(), peer)
    };
    Some(match op {
        Op::Join { room, resume } => {
            let conn = side.open();
            let token = resume
                .as_ref()
                .and_then(&pick)
                .and_then(|peer| side.tokens.get(&peer).cloned());
            let handle = side.conns[conn].clone();
            match side
                .broker
                .join(&handle, ROOMS[*room], token.as_deref())
                .await
            {
                Ok(peer) => Answer::Joined(side.number(peer)),
                Err(rejection) => refused(side, rejection),
            }
        }
        Op::Signal {
            from,
            to,
            size,
            wrong_conn,
        } => {
            let (from, to) = (pick(from)?, pick(to)?);
            let conn = if *wrong_conn {
                (known.peers[from].0 + 1) % known.conns
            } else {
                known.peers[from].0
            };
            let handle = side.conns[conn].clone();
            let (from, to) = (side.ids[from], side.ids[to]);
            match side
                .broker
                .signal(&handle, from, to, signal_data(*size))
                .await
            {
                Ok(()) => Answer::Done,
                Err(rejection) => refused(side, rejection),
            }
        }
        Op::Leave { peer } => {
            let peer = pick(peer)?;
            let handle = side.conns[known.peers[peer].0].clone();
            match side.broker.leave(&handle, side.ids[peer]).await {
                Ok(()) => Answer::Done,
                Err(rejection) => refused(side, rejection),
            }
        }
        Op::Disconnect { peer } => {
            let peer = pick(peer)?;
            let (conn, connected) = known.peers[peer];
            if !connected {
                return None;
            }
            let handle = side.conns[conn].clone();
            side.broker.disconnect(&handle, side.ids[peer]).await;
            Answer::Done
        }
    })
}

/// Takes the frames of both sides, waiting (bounded) for the Redis side to
/// have as many as the memory side on every connection.
async fn settled_frames(memory: &mut Side, redis: &mut Side) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let expected = memory.take_frames();
    let deadline = Instant::now() + SETTLE;
    let mut got: Vec<Vec<Value>> = vec![Vec::new(); expected.len()];
    loop {
        for (conn, frames) in redis.take_frames().into_iter().enumerate() {
            got[conn].extend(frames);
        }
        let behind = got.iter().zip(&expected).any(|(g, e)| g.len() < e.len());
        if !behind || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Anything late or extra shows up at the next comparison.
    tokio::time::sleep(Duration::from_millis(2)).await;
    for (conn, frames) in redis.take_frames().into_iter().enumerate() {
        got[conn].extend(frames);
    }
    (expected, got)
}

async fn run(redis_url: String, ops: Vec<Op>) {
    let mut memory = Side::new(Broker::memory(settings(), Arc::new(Metrics::new())));
    let redis_broker = Broker::redis(
        &redis_url,
        Duration::from_secs(10),
        settings(),
        Arc::new(Metrics::new()),
    )
    .await
    .expect("the Redis broker connects");
    let mut redis = Side::new(redis_broker);
    let mut known = Known::default();
    for (step, op) in ops.iter().enumerate() {
        let Some(answer) = apply(&mut memory, &known, op).await else {
            continue;
        };
        let redis_answer = apply(&mut redis, &known, op).await;
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("{step}: {op:?} -> {answer:?} / {redis_answer:?}");
        }
        assert_eq!(
            Some(&answer),
            redis_answer.as_ref(),
            "step {step}, {op:?}: the brokers answered differently"
        );
        let (expected, got) = settled_frames(&mut memory, &mut redis).await;
        assert_eq!(
            expected, got,
            "step {step}, {op:?}: the brokers delivered different frames (per connection)"
        );
        match (op, answer) {
            (Op::Join { .. }, Answer::Joined(peer)) => {
                let conn = known.conns;
                if peer == known.peers.len() {
                    known.peers.push((conn, true));
                } else {
                    known.peers[peer] = (conn, true);
                }
            }
            (Op::Leave { peer }, Answer::Done) | (Op::Disconnect { peer }, Answer::Done) => {
                let peer = peer.index(known.peers.len());
                known.peers[peer].1 = false;
            }
            _ => {}
        }
        if matches!(op, Op::Join { .. }) {
            known.conns += 1;
        }
    }
}

/// Runs random operation sequences (`PROPTEST_CASES` of them, or
/// `default_cases`), each on the Redis that `fresh_redis` empties or starts
/// and names.
fn run_cases(default_cases: u32, fresh_redis: impl FnMut() -> String) {
    // The runner takes a shared closure; each case still needs a fresh Redis.
    let fresh_redis = std::cell::RefCell::new(fresh_redis);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..80), |ops| {
            let url = (fresh_redis.borrow_mut())();
            runtime.block_on(run(url, ops));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_redis_broker_answers_and_delivers_as_the_memory_broker_does() {
    // A fresh Redis for every case: nothing carries over.
    let mut redis = None;
    run_cases(24, || {
        let fresh = RedisServer::start();
        let url = fresh.url();
        redis = Some(fresh);
        url
    });
}

#[test]
fn on_a_redis_cluster_too() {
    let cluster = RedisCluster::start();
    run_cases(6, || {
        cluster.flush_all();
        cluster.url()
    });
}
