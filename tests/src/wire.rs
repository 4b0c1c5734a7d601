//! An impaired Ethernet segment: a hub in its own namespace that forwards
//! frames between attached hosts after a delay, dropping a share of them.
//!
//! This stands in for `tc qdisc ... netem`, which needs a kernel built with
//! `CONFIG_NET_SCH_NETEM` (not every kernel has it, e.g. small VM kernels
//! without module support). The hub reads and writes raw frames on its veth
//! ends (packet sockets opened inside the hub's namespace), so hosts see an
//! ordinary link: ARP, IP, UDP and TCP, with the delay and loss applied to
//! every frame in each direction. Both can change while traffic flows
//! ([`Wire::set_delay`], [`Wire::set_loss`]; loss 1.0 cuts the link). A
//! wire can also be a bottleneck ([`Wire::set_rate`]: a link of that rate
//! behind a drop-tail queue) and a path with a small MTU ([`Wire::set_mtu`]:
//! larger packets are lost, as on a tunnel that sends no ICMP back).
//!
//! Frames a host sends carry checksums its veth left to "hardware"; the hub
//! completes IPv4 TCP and UDP checksums before passing frames on.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};

use crate::netns::Netns;

/// Frames waiting in one direction before the hub drops more (a router's queue).
const QUEUE_FRAMES: usize = 8192;
/// Receive buffer of the hub's packet sockets. With the default (about 90
/// frames' worth) a burst arriving while the hub's thread waited for a core
/// overflowed it: the "clean" wire lost 2–3 % of a data channel's packets.
const SOCKET_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// How often idle hub threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// A frame due within this much is sent at once. Sleeping for each frame
/// cost at least the timer slack (50 µs), which capped the wire near
/// 20 000 frames (27 MB) per second.
const EARLY: Duration = Duration::from_micros(200);
/// Ethernet header bytes, not counted in the MTU.
const ETHERNET_HEADER: usize = 14;

/// Delay, loss, rate and MTU, shared with the hub's threads.
#[derive(Default)]
struct Impairment {
    delay_us: AtomicU64,
    /// Loss in millionths.
    loss_ppm: AtomicU32,
    /// Bottleneck rate in bytes per second; 0 for none.
    rate_bytes_per_s: AtomicU64,
    /// Bytes the bottleneck's queue holds before it drops frames.
    queue_bytes: AtomicU64,
    /// Largest IP packet carried; 0 for no limit.
    mtu: AtomicU32,
}

/// One attached host: the hub's interface and the host's MAC address.
struct Port {
    hub_if: String,
    host_mac: [u8; 6],
}

/// A hub in its own namespace; stops its threads and deletes the namespace
/// when dropped.
pub struct Wire {
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    impairment: Arc<Impairment>,
    ports: Vec<Port>,
    started: bool,
    netns: Netns,
}

impl Default for Wire {
    fn default() -> Self {
        Self::new()
    }
}

impl Wire {
    /// An unimpaired hub with no hosts yet.
    pub fn new() -> Self {
        Self {
            stop: Arc::default(),
            threads: Arc::default(),
            impairment: Arc::default(),
            ports: Vec::new(),
            started: false,
            netns: Netns::new("wire"),
        }
    }

    /// Attaches `host` through a new interface `ifname` with address
    /// `addr` (CIDR). Attach every host before [`Wire::start`].
    pub fn attach(&mut self, host: &Netns, ifname: &str, addr: &str) {
        assert!(!self.started, "attach hosts before starting the wire");
        let index = self.ports.len() + 1;
        let hub_if = format!("port{index}");
        let host_mac = [0x02, 0, 0, 0, 0, u8::try_from(index).unwrap_or(u8::MAX)];
        let mac = host_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        host.ip(&[
            "link",
            "add",
            ifname,
            "address",
            &mac,
            "type",
            "veth",
            "peer",
            "name",
            &hub_if,
            "netns",
            self.netns.name(),
        ]);
        // The hub sees frames as the host hands them to its veth: have the
        // kernel cut segmentation-offloaded (GSO) packets into MTU-sized
        // frames first, since the hub cannot (the segment size is not in
        // the frame).
        host.ip(&["link", "set", ifname, "gso_max_segs", "1"]);
        host.ip(&["addr", "add", addr, "dev", ifname]);
        host.ip(&["link", "set", ifname, "up"]);
        self.netns.ip(&["link", "set", &hub_if, "up"]);
        // A veth queues each frame on the backlog of the CPU that sent it, so
        // a sender moving between CPUs had frames delivered out of order (TCP
        // reported `reord_seen` in the hundreds on a clean wire). Steering
        // each interface's frames to one CPU (RPS) keeps them in order.
        let cpu = index % std::thread::available_parallelism().map_or(1, |n| n.get());
        let mask = format!("{:x}", 1u64 << cpu.min(63));
        steer_to_one_cpu(host, ifname, &mask);
        steer_to_one_cpu(&self.netns, &hub_if, &mask);
        self.ports.push(Port { hub_if, host_mac });
    }

    /// Sets the one-way delay every frame gets (round trip: twice this).
    pub fn set_delay(&self, one_way: Duration) {
        let us = u64::try_from(one_way.as_micros()).unwrap_or(u64::MAX);
        self.impairment.delay_us.store(us, Ordering::Relaxed);
    }

    /// Sets the share of frames dropped in each direction, 0.0 to 1.0.
    pub fn set_loss(&self, fraction: f64) {
        let ppm = (fraction.clamp(0.0, 1.0) * 1e6).round() as u32;
        self.impairment.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Makes each direction a bottleneck of `bits_per_second` behind a
    /// drop-tail queue of `queue_bytes` (a frame that finds the queue full is
    /// dropped); 0 removes the limit.
    pub fn set_rate(&self, bits_per_second: u64, queue_bytes: u64) {
        self.impairment
            .rate_bytes_per_s
            .store(bits_per_second / 8, Ordering::Relaxed);
        self.impairment
            .queue_bytes
            .store(queue_bytes, Ordering::Relaxed);
    }

    /// Drops every frame whose IP packet is larger than `mtu` bytes; 0
    /// removes the limit.
    pub fn set_mtu(&self, mtu: u32) {
        self.impairment.mtu.store(mtu, Ordering::Relaxed);
    }

    /// Starts forwarding.
    pub fn start(&mut self) {
        assert!(!self.started, "the wire is already running");
        self.started = true;
        let namespace = File::open(self.netns.path())
            .unwrap_or_else(|err| panic!("cannot open {}: {err}", self.netns.path().display()));
        let ports: Vec<(String, [u8; 6])> = self
            .ports
            .iter()
            .map(|p| (p.hub_if.clone(), p.host_mac))
            .collect();
        let (stop, threads, impairment) = (
            Arc::clone(&self.stop),
            Arc::clone(&self.threads),
            Arc::clone(&self.impairment),
        );
        // Only this thread (and the threads it starts) enters the namespace.
        let setup = std::thread::spawn(move || {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|err| panic!("cannot enter the wire's namespace: {err}"));
            let interfaces = pnet_datalink::interfaces();
            let mut senders = Vec::new();
            let mut receivers = Vec::new();
            for (name, _) in &ports {
                let interface = interfaces
                    .iter()
                    .find(|i| &i.name == name)
                    .unwrap_or_else(|| panic!("no interface {name} in the wire's namespace"));
                let config = Config {
                    read_timeout: Some(POLL),
                    socket_fd: Some(packet_socket()),
                    ..Config::default()
                };
                match pnet_datalink::channel(interface, config) {
                    Ok(Channel::Ethernet(tx, rx)) => {
                        let (queue, queued) = mpsc::sync_channel(QUEUE_FRAMES);
                        senders.push(queue);
                        receivers.push(rx);
                        let stop = Arc::clone(&stop);
                        let thread = std::thread::spawn(move || transmit(tx, queued, &stop));
                        threads
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(thread);
                    }
                    Ok(_) => panic!("{name}: not an Ethernet channel"),
                    Err(err) => panic!("cannot open a packet socket on {name}: {err}"),
                }
            }
            let macs: Vec<[u8; 6]> = ports.iter().map(|(_, mac)| *mac).collect();
            for (index, rx) in receivers.into_iter().enumerate() {
                let hub = Hub {
                    index,
                    macs: macs.clone(),
                    queues: senders.clone(),
                    impairment: Arc::clone(&impairment),
                    link_free_at: Instant::now(),
                };
                let stop = Arc::clone(&stop);
                let thread = std::thread::spawn(move || hub.receive(rx, &stop));
                threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(thread);
            }
        });
        if setup.join().is_err() {
            panic!("the wire did not start (see the panic above)");
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Forwards frames arriving on one port.
struct Hub {
    index: usize,
    macs: Vec<[u8; 6]>,
    queues: Vec<SyncSender<(Instant, Vec<u8>)>>,
    impairment: Arc<Impairment>,
    /// When the bottleneck of this port's direction has sent the frames
    /// queued so far.
    link_free_at: Instant,
}

impl Hub {
    /// When a frame of `len` bytes arriving `now` leaves the bottleneck, or
    /// `None` if its queue is full (drop-tail). Without a rate limit: `now`.
    fn bottleneck(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let rate = self.impairment.rate_bytes_per_s.load(Ordering::Relaxed);
        if rate == 0 {
            return Some(now);
        }
        let start = self.link_free_at.max(now);
        let backlog = start.duration_since(now).as_secs_f64() * rate as f64;
        if backlog > self.impairment.queue_bytes.load(Ordering::Relaxed) as f64 {
            return None;
        }
        self.link_free_at = start + Duration::from_secs_f64(len as f64 / rate as f64);
        Some(self.link_free_at)
    }

    fn receive(mut self, mut rx: Box<dyn DataLinkReceiver>, stop: &AtomicBool) {
        let mut random = Random::new(self.index as u64 + 1);
        while !stop.load(Ordering::Relaxed) {
            let Ok(frame) = rx.next() else { continue };
            // Packet sockets also see frames the hub itself sent on this
            // port; only the attached host's own frames go on.
            if frame.get(6..12) != Some(&self.macs[self.index][..]) {
                continue;
            }
            let mtu = self.impairment.mtu.load(Ordering::Relaxed) as usize;
            if mtu != 0 && frame.len() > mtu + ETHERNET_HEADER {
                continue;
            }
            let mut frame = frame.to_vec();
            complete_checksums(&mut frame);
            let delay = Duration::from_micros(self.impairment.delay_us.load(Ordering::Relaxed));
            let loss = self.impairment.loss_ppm.load(Ordering::Relaxed);
            let Some(sent) = self.bottleneck(Instant::now(), frame.len()) else {
                continue;
            };
            let due = sent + delay;
            let destination = frame.get(0..6).unwrap_or_default();
            let known = self.macs.iter().position(|mac| mac == destination);
            for (port, queue) in self.queues.iter().enumerate() {
                let wanted = match known {
                    Some(target) => port == target,
                    None => port != self.index,
                };
                if !wanted || random.below_million() < loss {
                    continue;
                }
                // A full queue drops the frame, as a router's would.
                if let Err(TrySendError::Disconnected(_)) = queue.try_send((due, frame.clone())) {
                    return;
                }
            }
        }
    }
}

/// A raw packet socket with a [`SOCKET_BUFFER_BYTES`] receive buffer, for
/// `pnet_datalink` to bind (it takes ownership of the descriptor).
fn packet_socket() -> i32 {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockProtocol, SockType, sockopt};
    use std::os::fd::IntoRawFd;
    let fd = socket::socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .unwrap_or_else(|err| panic!("cannot open a packet socket: {err}"));
    // Root may exceed net.core.rmem_max.
    socket::setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_BUFFER_BYTES)
        .unwrap_or_else(|err| panic!("cannot size the packet socket's buffer: {err}"));
    fd.into_raw_fd()
}

/// Has `netns` hand every frame `ifname` receives to the CPUs of `mask`.
fn steer_to_one_cpu(netns: &Netns, ifname: &str, mask: &str) {
    let file = format!("/sys/class/net/{ifname}/queues/rx-0/rps_cpus");
    netns.exec("sh", &["-c", &format!("echo {mask} > {file}")]);
}

/// Sends each queued frame on one port when it is due.
fn transmit(
    mut tx: Box<dyn DataLinkSender>,
    queued: Receiver<(Instant, Vec<u8>)>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match queued.recv_timeout(POLL) {
            Ok((due, frame)) => {
                let now = Instant::now();
                if due > now + EARLY {
                    std::thread::sleep(due - now);
                }
                // A frame over the MTU fails like any lost frame.
                let _ = tx.send_to(&frame, None);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Fills in the TCP or UDP checksum of an unfragmented IPv4 frame.
fn complete_checksums(frame: &mut [u8]) {
    const ETHERNET: usize = 14;
    if frame.get(12..14) != Some(&[0x08, 0x00]) {
        return;
    }
    let Some(&version_ihl) = frame.get(ETHERNET) else {
        return;
    };
    let ihl = usize::from(version_ihl & 0x0F) * 4;
    let Some(ip) = frame.get(ETHERNET..ETHERNET + 20) else {
        return;
    };
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF != 0;
    let protocol = ip[9];
    let checksum_at = match protocol {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if fragmented || ihl < 20 || total < ihl + checksum_at + 2 {
        return;
    }
    let start = ETHERNET + ihl;
    let end = ETHERNET + total;
    if frame.len() < end {
        return;
    }
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&frame[ETHERNET + 12..ETHERNET + 20]);
    pseudo[9] = protocol;
    let length = u16::try_from(total - ihl).unwrap_or(u16::MAX);
    pseudo[10..12].copy_from_slice(&length.to_be_bytes());
    frame[start + checksum_at] = 0;
    frame[start + checksum_at + 1] = 0;
    let sum = ones_complement_sum(&pseudo, 0);
    let sum = ones_complement_sum(&frame[start..end], sum);
    let mut checksum = !fold(sum);
    if protocol == 17 && checksum == 0 {
        checksum = 0xFFFF;
    }
    frame[start + checksum_at..start + checksum_at + 2].copy_from_slice(&checksum.to_be_bytes());
}

fn ones_complement_sum(bytes: &[u8], mut sum: u64) -> u64 {
    let mut pairs = bytes.chunks_exact(2);
    for pair in &mut pairs {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// A small xorshift generator: loss decisions need speed, not quality.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos())
            .unwrap_or(0);
        Self((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(nanos)) | 1)
    }

    fn below_million(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksum_matches_a_known_frame() {
        // 10.9.0.1:1000 -> 10.9.0.2:2000, payload "hi".
        let mut frame = vec![0u8; 14];
        frame[12] = 0x08;
        frame.extend_from_slice(&[
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2,
        ]);
        frame.extend_from_slice(&[0x03, 0xE8, 0x07, 0xD0, 0, 10, 0xAB, 0xCD, b'h', b'i']);
        complete_checksums(&mut frame);
        let udp = &frame[34..];
        // Sum over pseudo header and segment including the checksum is 0xFFFF.
        let mut pseudo = vec![10, 9, 0, 1, 10, 9, 0, 2, 0, 17, 0, 10];
        pseudo.extend_from_slice(udp);
        assert_eq!(fold(ones_complement_sum(&pseudo, 0)), 0xFFFF);
    }
}
