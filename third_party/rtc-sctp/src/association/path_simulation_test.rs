//! Two associations over a simulated path on a virtual clock: a one-way delay, random or chosen
//! losses, and a bottleneck of a given rate with a drop-tail queue. No sockets and no sleeping,
//! so recovery and window growth are tested deterministically and a minute of a 100 ms path
//! runs in well under a second.

use super::*;
use crate::chunk::chunk_payload_data::PayloadProtocolIdentifier;
use crate::config::{ClientConfig, EndpointConfig, ServerConfig, max_payload_size_for_mtu};
use crate::endpoint::Endpoint;
use crate::endpoint::{AssociationHandle, DatagramEvent};
use crate::packet::Packet;
use crate::shared::EndpointEvent;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The packet size the engine configures for data channels.
const MTU: u32 = 1400;
/// The receive window the engine configures.
const RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;
/// What the sending application keeps queued, as the engine's default send buffer.
const SEND_BUFFER: usize = 4 * 1024 * 1024;
/// The message size a file transfer writes.
const MESSAGE: usize = 64 * 1024;
const STREAM: u16 = 1;

/// A small deterministic generator (xorshift64*), so a seed names one sequence of losses.
struct Lottery(u64);

impl Lottery {
    fn draw(&mut self, parts_per_million: u32) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        value % 1_000_000 < u64::from(parts_per_million)
    }
}

/// Decides whether the wire loses a DATA packet, given the TSNs it carries and how many
/// times each was sent before.
type Dropper = Box<dyn FnMut(&[(u32, u32)]) -> bool>;

/// One direction of the path.
struct Direction {
    delay: Duration,
    /// Bits per second of the bottleneck; `None` is unlimited.
    rate: Option<u64>,
    queue_bytes: u64,
    loss_ppm: u32,
    /// The largest packet this direction carries; `None` is any.
    mtu: Option<usize>,
    lottery: Lottery,
    dropper: Option<Dropper>,
    /// When the bottleneck finishes sending what is queued.
    free_at: Instant,
    in_flight: VecDeque<(Instant, Bytes)>,
    /// Times each TSN went onto this direction, to tell retransmissions apart.
    transmissions: BTreeMap<u32, u32>,
    dropped_by_queue: u64,
    /// SACK chunks carried.
    sacks: u64,
    /// Sets the I bit (RFC 7053) on the DATA chunks of this many packets, the first ones, as
    /// a sender asking for SACKs would.
    immediate_sack_packets: u32,
}

impl Direction {
    fn new(delay: Duration, now: Instant, seed: u64) -> Self {
        Direction {
            delay,
            rate: None,
            queue_bytes: u64::MAX,
            loss_ppm: 0,
            mtu: None,
            lottery: Lottery(seed),
            dropper: None,
            free_at: now,
            in_flight: VecDeque::new(),
            transmissions: BTreeMap::new(),
            dropped_by_queue: 0,
            sacks: 0,
            immediate_sack_packets: 0,
        }
    }

    fn send(&mut self, now: Instant, packet: Bytes) {
        self.sacks += count_sacks(&packet);
        let mut packet = packet;
        if self.immediate_sack_packets > 0
            && let Some(marked) = with_immediate_sacks(&packet)
        {
            self.immediate_sack_packets -= 1;
            packet = marked;
        }
        if self.mtu.is_some_and(|mtu| packet.len() > mtu) {
            return;
        }
        let tsns = data_tsns(&packet)
            .into_iter()
            .map(|tsn| {
                let sent = self.transmissions.entry(tsn).or_insert(0);
                *sent += 1;
                (tsn, *sent - 1)
            })
            .collect::<Vec<_>>();
        if !tsns.is_empty()
            && let Some(dropper) = self.dropper.as_mut()
            && dropper(&tsns)
        {
            return;
        }
        if self.lottery.draw(self.loss_ppm) {
            return;
        }
        let arrival = match self.rate {
            None => now + self.delay,
            Some(rate) => {
                let start = self.free_at.max(now);
                let backlog = (start - now).as_nanos() as u64 * rate / 8 / 1_000_000_000;
                if backlog + packet.len() as u64 > self.queue_bytes {
                    self.dropped_by_queue += 1;
                    return;
                }
                let serialisation = packet.len() as u64 * 8 * 1_000_000_000 / rate;
                self.free_at = start + Duration::from_nanos(serialisation);
                self.free_at + self.delay
            }
        };
        self.in_flight.push_back((arrival, packet));
    }
}

fn count_sacks(packet: &Bytes) -> u64 {
    let Ok(packet) = Packet::unmarshal(packet) else {
        return 0;
    };
    packet
        .chunks
        .iter()
        .filter(|chunk| chunk.as_any().is::<ChunkSelectiveAck>())
        .count() as u64
}

/// `packet` with the I bit set on its DATA chunks, when it carries DATA and nothing else.
fn with_immediate_sacks(packet: &Bytes) -> Option<Bytes> {
    let parsed = Packet::unmarshal(packet).ok()?;
    let data: Vec<ChunkPayloadData> = parsed
        .chunks
        .iter()
        .filter_map(|chunk| chunk.as_any().downcast_ref::<ChunkPayloadData>())
        .cloned()
        .collect();
    if data.is_empty() || data.len() != parsed.chunks.len() {
        return None;
    }
    let marked = Packet {
        common_header: parsed.common_header,
        chunks: data
            .into_iter()
            .map(|chunk| {
                Box::new(ChunkPayloadData {
                    immediate_sack: true,
                    ..chunk
                }) as Box<dyn Chunk>
            })
            .collect(),
    };
    marked.marshal().ok()
}

fn data_tsns(packet: &Bytes) -> Vec<u32> {
    let Ok(packet) = Packet::unmarshal(packet) else {
        return vec![];
    };
    packet
        .chunks
        .iter()
        .filter_map(|chunk| chunk.as_any().downcast_ref::<ChunkPayloadData>())
        .map(|data| data.tsn)
        .collect()
}

/// One end: an endpoint and the association it holds.
struct Host {
    endpoint: Endpoint,
    addr: SocketAddr,
    association: Option<(AssociationHandle, Association)>,
}

impl Host {
    fn new(port: u16, server: bool) -> Self {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let mut endpoint_config = EndpointConfig::new();
        endpoint_config.max_payload_size(max_payload_size_for_mtu(MTU));
        let server_config = server.then(|| {
            Arc::new(ServerConfig::new(
                TransportConfig::default().with_max_receive_buffer_size(RECEIVE_WINDOW),
            ))
        });
        Host {
            endpoint: Endpoint::new(
                addr,
                TransportProtocol::UDP,
                Arc::new(endpoint_config),
                server_config,
            ),
            addr,
            association: None,
        }
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, packet: Bytes) {
        match self.endpoint.handle(now, from, None, packet) {
            Some((handle, DatagramEvent::NewAssociation(association))) => {
                self.association = Some((handle, association));
            }
            Some((_, DatagramEvent::AssociationEvent(event))) => {
                if let Some((_, association)) = self.association.as_mut() {
                    association.handle_event(event);
                }
            }
            None => {}
        }
    }

    /// Runs timers and collects what the association sends.
    fn poll(&mut self, now: Instant, wire: &mut Direction) {
        let Some((handle, association)) = self.association.as_mut() else {
            return;
        };
        if association.poll_timeout().is_some_and(|at| at <= now) {
            association.handle_timeout(now);
        }
        while association.poll().is_some() {}
        let mut drained: Vec<EndpointEvent> = vec![];
        while let Some(event) = association.poll_endpoint_event() {
            drained.push(event);
        }
        while let Some(transmit) = association.poll_transmit(now) {
            if let Payload::RawEncode(packets) = transmit.message {
                for packet in packets {
                    wire.send(now, packet);
                }
            }
        }
        let handle = *handle;
        for event in drained {
            self.endpoint.handle_event(handle, event);
        }
    }

    fn association(&mut self) -> &mut Association {
        match self.association.as_mut() {
            Some((_, association)) => association,
            None => panic!("no association yet"),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.association
            .as_ref()
            .and_then(|(_, association)| association.poll_timeout())
    }
}

/// What a bulk transfer achieved.
#[derive(Debug)]
struct Report {
    /// From the first byte written to the last byte read.
    elapsed: Duration,
    delivered: u64,
    /// Bytes read by each whole second of the transfer.
    per_second: Vec<u64>,
    /// The congestion window at the end of each whole second, in packets.
    cwnd_per_second: Vec<u32>,
    t3_timeouts: u64,
    fast_retransmissions: u64,
    dropped_by_queue: u64,
}

impl Report {
    /// Bytes per second over the whole transfer.
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// A client and a server over a simulated path.
struct Simulation {
    now: Instant,
    client: Host,
    server: Host,
    /// Client to server: the direction a transfer's DATA takes.
    forward: Direction,
    backward: Direction,
    /// Whether data waits for the first path MTU probes to be answered, as a data channel's
    /// does in practice (its opening takes a round trip).
    settle_path_mtu: bool,
    /// The server transmits only this often, reading what arrives in between as it arrives:
    /// a receiver whose driver is busy. `None`: after every arrival.
    server_transmits_every: Option<Duration>,
    /// When the server transmits next, with `server_transmits_every`.
    server_transmit_at: Instant,
}

impl Simulation {
    /// A path with `rtt` split evenly between the two directions.
    fn new(rtt: Duration) -> Self {
        let now = Instant::now();
        Simulation {
            now,
            client: Host::new(5000, false),
            server: Host::new(5001, true),
            forward: Direction::new(rtt / 2, now, 0x9E37_79B9_7F4A_7C15),
            backward: Direction::new(rtt / 2, now, 0xD1B5_4A32_D192_ED03),
            settle_path_mtu: true,
            server_transmits_every: None,
            server_transmit_at: now,
        }
    }

    /// Runs the server's timers and transmits, unless it is busy until later.
    fn poll_server(&mut self) {
        if let Some(every) = self.server_transmits_every {
            if self.now < self.server_transmit_at {
                return;
            }
            self.server_transmit_at = self.now + every;
        }
        self.server.poll(self.now, &mut self.backward);
    }

    /// Delivers what is due and runs both ends at the current instant.
    fn turn(&mut self) {
        while let Some((arrival, _)) = self.forward.in_flight.front() {
            if *arrival > self.now {
                break;
            }
            if let Some((_, packet)) = self.forward.in_flight.pop_front() {
                self.server.receive(self.now, self.client.addr, packet);
            }
        }
        while let Some((arrival, _)) = self.backward.in_flight.front() {
            if *arrival > self.now {
                break;
            }
            if let Some((_, packet)) = self.backward.in_flight.pop_front() {
                self.client.receive(self.now, self.server.addr, packet);
            }
        }
        self.client.poll(self.now, &mut self.forward);
        self.poll_server();
    }

    /// Moves the clock to the next thing that happens, no further than `limit`.
    fn advance(&mut self, limit: Instant) {
        let next = [
            self.client.next_timeout(),
            self.server.next_timeout(),
            self.forward.in_flight.front().map(|(at, _)| *at),
            self.backward.in_flight.front().map(|(at, _)| *at),
            self.server_transmits_every
                .map(|_| self.server_transmit_at.max(self.now)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(limit);
        self.now = next.clamp(self.now, limit);
    }

    fn connect(&mut self) {
        let config = ClientConfig::new(
            TransportConfig::default().with_max_receive_buffer_size(RECEIVE_WINDOW),
        );
        let (handle, association) =
            match self
                .client
                .endpoint
                .connect(self.now, config, self.server.addr)
            {
                Ok(pair) => pair,
                Err(err) => panic!("connect: {err}"),
            };
        self.client.association = Some((handle, association));
        let limit = self.now + Duration::from_secs(10);
        while self.now < limit {
            self.turn();
            let settle = self.settle_path_mtu;
            let up = |host: &Host| {
                host.association.as_ref().is_some_and(|(_, a)| {
                    a.state() == AssociationState::Established
                        && !(settle && a.path_mtu.is_probing())
                })
            };
            if up(&self.client) && up(&self.server) {
                break;
            }
            self.advance(limit);
        }
        assert_eq!(
            self.client.association().state(),
            AssociationState::Established
        );
        if let Err(err) = self
            .client
            .association()
            .open_stream(STREAM, PayloadProtocolIdentifier::Binary)
        {
            panic!("open_stream: {err}");
        }
    }

    /// Sends `total` bytes client to server as a file transfer would, in 64 KiB messages with
    /// up to 4 MiB queued, and reads them as they arrive; gives up after `limit` of virtual time.
    fn transfer(&mut self, total: u64, limit: Duration) -> Report {
        self.connect();
        let message = Bytes::from(vec![0u8; MESSAGE]);
        let start = self.now;
        let deadline = start + limit;
        let mut written = 0u64;
        let mut delivered = 0u64;
        let mut per_second = vec![];
        let mut cwnd_per_second = vec![];
        self.client.association().stats.reset();
        while delivered < total && self.now < deadline {
            let now = self.now;
            let sender = self.client.association();
            while written < total && sender.buffered_amount() < SEND_BUFFER {
                let size = (total - written).min(MESSAGE as u64) as usize;
                match sender.stream(STREAM).and_then(|mut stream| {
                    stream.write_sctp(
                        now,
                        &message.slice(..size),
                        PayloadProtocolIdentifier::Binary,
                    )
                }) {
                    Ok(n) => written += n as u64,
                    Err(err) => panic!("write: {err}"),
                }
            }
            self.turn();
            let second = (self.now - start).as_secs() as usize;
            let sender = self.client.association();
            cwnd_per_second.resize(second + 1, sender.cwnd / sender.mtu);
            let receiver = self.server.association();
            while let Some(id) = receiver.accept_stream().map(|s| s.stream_identifier) {
                assert_eq!(id, STREAM);
            }
            if receiver.streams.contains_key(&STREAM) {
                loop {
                    match receiver.stream(STREAM).and_then(|mut s| s.read_sctp()) {
                        Ok(Some(chunks)) => {
                            delivered += chunks.len() as u64;
                            let second = (self.now - start).as_secs() as usize;
                            if per_second.len() <= second {
                                per_second.resize(second + 1, 0);
                            }
                            per_second[second] += chunks.len() as u64;
                        }
                        Ok(None) => break,
                        Err(err) => panic!("read: {err}"),
                    }
                }
                // Reading frees window; let the receiver say so at this instant.
                self.poll_server();
            }
            self.advance(deadline);
        }
        let stats = &mut self.client.association().stats;
        Report {
            elapsed: self.now - start,
            delivered,
            per_second,
            cwnd_per_second,
            t3_timeouts: stats.get_num_t3timeouts(),
            fast_retransmissions: stats.get_num_fast_retrans(),
            dropped_by_queue: self.forward.dropped_by_queue,
        }
    }
}

const MB: f64 = 1_000_000.0;
const MS: Duration = Duration::from_millis(1);

/// Payload bytes a bottleneck of `bits_per_second` carries each second in full packets.
fn goodput_capacity(bits_per_second: u64) -> f64 {
    let payload = f64::from(max_payload_size_for_mtu(MTU));
    bits_per_second as f64 / 8.0 * payload / f64::from(MTU)
}

/// Drops the first `times` transmissions of the chunks whose place in the transfer (0 for
/// the first DATA chunk) is in `places`.
fn drop_chunks(places: std::ops::Range<u32>, times: u32) -> Dropper {
    let mut first = None;
    Box::new(move |tsns| {
        tsns.iter().any(|&(tsn, sent_before)| {
            let base = *first.get_or_insert(tsn);
            places.contains(&tsn.wrapping_sub(base)) && sent_before < times
        })
    })
}

fn transfer_over(sim: &mut Simulation, total: u64, limit: Duration) -> Report {
    let report = sim.transfer(total, limit);
    eprintln!("{report:?}: {:.2} MB/s", report.rate() / MB);
    assert_eq!(report.delivered, total, "the transfer did not complete");
    report
}

#[test]
fn a_clean_bottleneck_is_filled() {
    // 50 Mbit/s, 50 ms, a drop-tail queue of one bandwidth-delay product. Slow start
    // overshoots it; the repairs go out as the window allows, so no timeout.
    let mut sim = Simulation::new(50 * MS);
    sim.forward.rate = Some(50_000_000);
    sim.forward.queue_bytes = 50_000_000 / 8 / 20;
    let report = transfer_over(&mut sim, 60_000_000, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    let capacity = goodput_capacity(50_000_000);
    assert!(
        report.rate() >= 0.9 * capacity,
        "{:.2} MB/s of {:.2}",
        report.rate() / MB,
        capacity / MB
    );
}

#[test]
fn random_loss_without_a_queue_keeps_the_window() {
    // CUBIC would settle near 40 packets a round trip here (0.5 MB/s); the path is not
    // congested, so the window stays and the 4 MiB receive window is the limit.
    let mut sim = Simulation::new(100 * MS);
    sim.forward.loss_ppm = 1_000;
    sim.backward.loss_ppm = 1_000;
    let report = transfer_over(&mut sim, 60_000_000, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    assert!(report.rate() >= 10.0 * MB, "{:.2} MB/s", report.rate() / MB);
}

#[test]
fn a_shallow_bottleneck_is_not_flooded() {
    // 20 packets of queue cannot delay anything measurably: frequent losses must still cut
    // the window, or the sender would keep a tenth of what it sends in repairs.
    let mut sim = Simulation::new(20 * MS);
    sim.forward.rate = Some(50_000_000);
    sim.forward.queue_bytes = 20 * u64::from(MTU);
    let total = 30_000_000;
    let report = transfer_over(&mut sim, total, Duration::from_secs(60));
    let capacity = goodput_capacity(50_000_000);
    assert!(
        report.rate() >= 0.8 * capacity,
        "{:.2} MB/s of {:.2}",
        report.rate() / MB,
        capacity / MB
    );
    let chunks = total / u64::from(max_payload_size_for_mtu(MTU));
    assert!(
        report.fast_retransmissions * 100 <= chunks * 3,
        "{} repairs for {chunks} chunks",
        report.fast_retransmissions
    );
}

#[test]
fn a_burst_loss_is_repaired_without_a_timeout() {
    let mut sim = Simulation::new(50 * MS);
    sim.forward.dropper = Some(drop_chunks(2_000..2_200, 1));
    let report = transfer_over(&mut sim, 10_000_000, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    // Each lost chunk once, and nothing that was only still in flight.
    assert_eq!(200, report.fast_retransmissions);
}

#[test]
fn a_lost_retransmission_is_repaired_without_a_timeout() {
    let mut sim = Simulation::new(50 * MS);
    sim.forward.dropper = Some(drop_chunks(500..501, 2));
    let report = transfer_over(&mut sim, 10_000_000, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    assert_eq!(2, report.fast_retransmissions);
}

#[test]
fn a_tail_loss_is_repaired_by_a_probe() {
    // The last three chunks of a message: nothing follows them to reveal the loss. Two SRTTs
    // after the last SACK a probe resends the newest chunk; its SACK shows the other two
    // missing. The T3-rtx timer (SRTT + 250 ms at least) would have taken 500 ms in all.
    let mut sim = Simulation::new(50 * MS);
    sim.forward.dropper = Some(drop_chunks(45..48, 1));
    let report = transfer_over(&mut sim, MESSAGE as u64, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    assert!(
        report.elapsed <= 400 * MS,
        "the tail took {:?} to repair",
        report.elapsed
    );
}

#[test]
fn five_percent_random_loss_keeps_the_window() {
    // 5 % each way: the share of lost chunks over a round trip or two is noisy while the
    // window is small, and must not be taken for a policer's.
    let mut sim = Simulation::new(100 * MS);
    sim.forward.loss_ppm = 50_000;
    sim.backward.loss_ppm = 50_000;
    let report = transfer_over(&mut sim, 20_000_000, Duration::from_secs(120));
    assert!(report.rate() >= 2.0 * MB, "{:.2} MB/s", report.rate() / MB);
}

#[test]
fn data_grows_to_the_configured_size_after_one_probe() {
    let mut sim = Simulation::new(50 * MS);
    sim.settle_path_mtu = false;
    sim.connect();
    let sent = sim.now;
    assert!(sim.client.association().mtu < MTU, "DATA starts small");
    let limit = sent + Duration::from_secs(1);
    loop {
        sim.turn();
        if sim.client.association().mtu == MTU || sim.now >= limit {
            break;
        }
        sim.advance(limit);
    }
    assert_eq!(MTU, sim.client.association().mtu);
    assert!(sim.now - sent <= 50 * MS, "took {:?}", sim.now - sent);
}

#[test]
fn a_path_that_drops_large_packets_carries_a_transfer_at_full_size() {
    // A tunnel that drops every packet over 1 240 bytes without a word. The configured
    // 1 400 bytes would lose every full DATA packet; DATA starts smaller, the probes find
    // the largest size that passes, and no timeout or repair is needed.
    let path_mtu = 1240;
    let mut sim = Simulation::new(50 * MS);
    sim.settle_path_mtu = false;
    sim.forward.mtu = Some(path_mtu);
    sim.backward.mtu = Some(path_mtu);
    // Long enough for the search to end: each size too big costs three probe timeouts.
    let report = transfer_over(&mut sim, 200_000_000, Duration::from_secs(60));
    assert_eq!(0, report.t3_timeouts);
    assert_eq!(0, report.fast_retransmissions);
    let found = sim.client.association().mtu as usize;
    assert!(
        found <= path_mtu && found + 16 > path_mtu,
        "settled at {found} bytes"
    );
    assert!(report.rate() >= 10.0 * MB, "{:.2} MB/s", report.rate() / MB);
}

#[test]
fn a_burst_read_at_once_is_acknowledged_every_second_packet() {
    // Ten packets arrive at the same instant and are all read before the receiver transmits,
    // as a driver that drains its socket does. One SACK for all ten would let a sender that
    // sends four packets per SACK (Max.Burst) send only four more. The first four packets get
    // a SACK each two, so such a sender grows; the rest share one.
    let mut sim = Simulation::new(50 * MS);
    let payload = max_payload_size_for_mtu(MTU) as usize;
    let report = transfer_over(&mut sim, 10 * payload as u64, Duration::from_secs(10));
    assert_eq!(10 * payload as u64, report.delivered);
    assert_eq!(3, sim.backward.sacks);
}

#[test]
fn a_gap_is_acknowledged_packet_by_packet() {
    // The third of ten packets read at once is lost: the two before it share a SACK, each
    // of the seven after it gets its own (the sender's miss indications), and so does the
    // repair that fills the gap.
    let mut sim = Simulation::new(50 * MS);
    sim.forward.dropper = Some(drop_chunks(2..3, 1));
    let payload = max_payload_size_for_mtu(MTU) as usize;
    let report = transfer_over(&mut sim, 10 * payload as u64, Duration::from_secs(10));
    assert_eq!(1, report.fast_retransmissions);
    assert_eq!(0, report.t3_timeouts);
    assert_eq!(1 + 7 + 1, sim.backward.sacks);
}

/// A message written at the start of a 4.6 s outage of the forward direction (nothing that
/// carries DATA gets through), then the path is back; how long after that the receiver has it,
/// with or without [`Association::handle_path_change`] at that moment.
fn delivery_after_an_outage(path_change: bool) -> Duration {
    let mut sim = Simulation::new(50 * MS);
    sim.connect();
    sim.forward.dropper = Some(Box::new(|_| true));
    let now = sim.now;
    let message = Bytes::from(vec![0u8; MESSAGE]);
    if let Err(err) = sim
        .client
        .association()
        .stream(STREAM)
        .and_then(|mut stream| stream.write_sctp(now, &message, PayloadProtocolIdentifier::Binary))
    {
        panic!("write: {err}");
    }
    // T3-rtx expires during the outage, and its RTO doubles up to the 3 s cap.
    let back = sim.now + Duration::from_millis(4_600);
    while sim.now < back {
        sim.turn();
        sim.advance(back);
    }
    let timeouts = sim.client.association().stats.get_num_t3timeouts();
    assert!(
        timeouts >= 2,
        "T3-rtx expired {timeouts} times in the outage"
    );
    assert_eq!(sim.client.association().rto_mgr.get_rto(), 3_000);
    sim.forward.dropper = None;
    if path_change {
        sim.client.association().handle_path_change(sim.now);
    }
    let limit = back + Duration::from_secs(10);
    let mut delivered = 0;
    while delivered < MESSAGE && sim.now < limit {
        sim.turn();
        let receiver = sim.server.association();
        while receiver.accept_stream().is_some() {}
        if receiver.streams.contains_key(&STREAM) {
            while let Ok(Some(chunks)) = receiver.stream(STREAM).and_then(|mut s| s.read_sctp()) {
                delivered += chunks.len();
            }
        }
        sim.advance(limit);
    }
    assert_eq!(delivered, MESSAGE, "the message did not arrive");
    sim.now - back
}

#[test]
fn a_new_path_retransmits_at_once_after_an_outage() {
    let with = delivery_after_an_outage(true);
    let without = delivery_after_an_outage(false);
    eprintln!("delivered {with:?} after the path came back (without the path change: {without:?})");
    // The slow start of one 64 KiB message from a window of one packet: six round trips.
    assert!(with < 400 * MS, "{with:?}");
    // The backed-off T3-rtx expires up to 3 s later; here 1.7 s.
    assert!(without > 1_000 * MS, "{without:?}");
}

#[test]
fn a_sender_asking_for_immediate_sacks_gets_one_per_packet() {
    // The same ten packets read at once, each with the I bit (RFC 7053): each gets its own
    // SACK, as Chrome's receiver gives them, instead of three for the ten.
    let mut sim = Simulation::new(50 * MS);
    sim.forward.immediate_sack_packets = u32::MAX;
    let payload = max_payload_size_for_mtu(MTU) as usize;
    let report = transfer_over(&mut sim, 10 * payload as u64, Duration::from_secs(10));
    assert_eq!(10 * payload as u64, report.delivered);
    assert_eq!(10, sim.backward.sacks);
}

#[test]
fn a_burst_read_by_a_busy_receiver_is_acknowledged_every_second_packet() {
    // Packets arrive 50 µs apart (224 Mbit/s) at a receiver that transmits every 2 ms: each
    // transmit follows some forty packets. The first two pairs got a SACK each and the rest
    // one between them, which held a sender that sends four packets per SACK (Chrome's) to a
    // fixed number per round trip. Pairs that arrive at least 100 µs after the last SACK get
    // their own: about one SACK per two packets, at most ten thousand a second.
    let mut sim = Simulation::new(50 * MS);
    sim.forward.rate = Some(224_000_000);
    sim.server_transmits_every = Some(Duration::from_millis(2));
    let payload = max_payload_size_for_mtu(MTU) as u64;
    let packets = 2_000;
    let report = transfer_over(&mut sim, packets * payload, Duration::from_secs(30));
    assert_eq!(packets * payload, report.delivered);
    assert!(
        sim.backward.sacks * 3 >= packets,
        "{} SACKs for {packets} packets",
        sim.backward.sacks
    );
}
