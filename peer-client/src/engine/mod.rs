//! The WebRTC engine: the only module that touches the `webrtc` crate.
//!
//! [`RtcConnection`] wraps one `RTCPeerConnection` and speaks the crate's own
//! types ([`SessionDescription`], [`IceCandidate`], [`LinkState`]) to the rest
//! of the library. The settings that make `webrtc` 0.21.1 fast are applied
//! here; `docs/webrtc-engine.md` explains each one.

mod channel;
mod handler;
mod runtime;
mod sdp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use rtc::peer_connection::transport::RTCDtlsRole;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit, RTCDataChannelState};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceCandidateType, RTCIceServer, RTCIceTransportPolicy, RTCSdpType, SettingEngineBuilder,
};

pub(crate) use channel::{ChannelEvent, RtcChannel};
use handler::{Handler, emit};
use runtime::{RelayFlush, SocketStats, TunedRuntime, size_buffers};
pub(crate) use sdp::description_fingerprint;
use sdp::{from_rtc, sdp_fingerprint, to_rtc};

use crate::error::Error;
use crate::link_state::{LinkPath, LinkState};
use crate::options::{MdnsMode, TransportOptions};
use crate::signal::{IceCandidate, SdpKind, SessionDescription};
use signaling_protocol::IceServer;

/// Pause between connectivity checks while ICE is connecting. The driver of
/// `webrtc` 0.21.1 flushes packets queued by internal events only when it
/// wakes, and while ICE checks this timer is what wakes it.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// Checks per candidate pair before it counts as failed: with the interval
/// above, about 2.5 s, so a path with a long round trip still succeeds.
const ICE_MAX_BINDING_REQUESTS: u16 = 500;
/// Consent/keepalive checks on an established link (RFC 7675 asks for
/// roughly one every 5 s; browsers send one every 1–2.5 s).
const ICE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a relayed pair waits before it may be chosen, giving a direct
/// pair the chance to win (no wait when only relays are allowed).
const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_secs(1);
/// Silence after which a link is reported disconnected, then failed.
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
const ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(25);
/// SCTP receive window, whatever socket buffer the kernel grants: it bounds
/// the bytes in flight, so it must cover the path's bandwidth-delay product
/// (4 MiB: 40 MB/s at 100 ms). A window tied to a desktop kernel's 425 KiB
/// socket buffer capped a 100 ms path at 1.5 MB/s; now that losses at a full
/// socket are repaired by fast retransmission, congestion control finds what
/// the socket absorbs instead (see docs/webrtc-engine.md).
const SCTP_RECEIVE_WINDOW: usize = 4 * 1024 * 1024;
/// Largest data-channel message (the most the SCTP stack supports, and what
/// Chromium accepts).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SCTP packet size: one DTLS record in one UDP datagram, below a 1500-byte MTU.
const SCTP_MTU: u32 = 1400;
/// How often, and for how long at most, a new channel wakes the driver while it opens.
const OPEN_PUMP_INTERVAL: Duration = Duration::from_millis(1);
const OPEN_PUMP_LIMIT: Duration = Duration::from_secs(10);
/// Events a connection may queue for its owner before callbacks spill into tasks.
const EVENT_QUEUE: usize = 256;

/// Something a connection reports to its owner.
#[derive(Debug)]
pub(crate) enum RtcEvent {
    /// A local candidate to trickle to the other side; `None` ends gathering.
    LocalCandidate(Option<IceCandidate>),
    /// The connection state changed.
    State(LinkState),
    /// The other side opened a data channel.
    IncomingChannel(RtcChannel),
    /// ICE found a working candidate pair; DTLS starts now.
    IceConnected,
    /// The connection stopped working for good without being closed: its
    /// driver met an error. `webrtc` 0.21.1 ends the driver when a DTLS
    /// handshake runs out of retransmissions and reports no state change.
    Stopped,
}

/// Traffic and buffer figures of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Receive buffer the kernel granted per socket, in bytes as it reports them.
    pub socket_receive_buffer: usize,
    /// SCTP receive window this side advertises, in bytes.
    pub sctp_receive_window: usize,
    /// Largest message this side accepts, in bytes.
    pub max_message_bytes: usize,
}

/// The DTLS certificate fingerprints of a link, as the descriptions carry
/// them (`sha-256 AB:CD:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsFingerprints {
    /// This side's certificate.
    pub local: String,
    /// The other side's certificate, which DTLS verified.
    pub remote: String,
}

/// What the kernel grants for a UDP socket's receive buffer when asked for
/// `requested` bytes, probed on a scratch socket (for [`NetStats`] before the
/// connection's own sockets report theirs).
fn probe_socket_buffer(requested: usize) -> usize {
    let granted = std::net::UdpSocket::bind("127.0.0.1:0")
        .map(|socket| size_buffers(&socket, requested).0)
        .unwrap_or(0);
    if granted == 0 { 212_992 } else { granted }
}

/// One peer connection.
pub(crate) struct RtcConnection {
    pc: Arc<dyn PeerConnection>,
    stats: Arc<SocketStats>,
    /// Receive buffer granted to a socket asked for the configured size.
    probed_socket_buffer: usize,
    /// `a=mid` of the data section, stamped on trickled candidates.
    mid: Arc<std::sync::Mutex<String>>,
    /// The first channel created here, which wakes the driver on state changes.
    waker: Arc<OnceLock<Arc<dyn DataChannel>>>,
    /// Keeps the driver awake while the path may be relayed.
    relay_flush: Arc<RelayFlush>,
    /// Set by [`RtcConnection::close`], so the driver's end is not reported as
    /// [`RtcEvent::Stopped`].
    closing: Arc<AtomicBool>,
}

impl RtcConnection {
    /// Builds a connection; its events arrive on the returned receiver.
    pub(crate) async fn new(
        options: &TransportOptions,
        ice_servers: &[IceServer],
    ) -> Result<(Self, mpsc::Receiver<RtcEvent>), Error> {
        let probed_socket_buffer = probe_socket_buffer(options.socket_buffer_bytes);
        let stats = Arc::new(SocketStats::default());
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let closing = Arc::new(AtomicBool::new(false));
        let driver_exit = {
            let events = events_tx.clone();
            let closing = Arc::clone(&closing);
            Box::new(move || {
                if !closing.load(Ordering::Acquire) {
                    tracing::warn!("the peer connection's driver stopped on an error");
                    emit(&events, RtcEvent::Stopped);
                }
            })
        };
        let runtime = Arc::new(TunedRuntime::new(
            options.socket_buffer_bytes,
            Arc::clone(&stats),
            driver_exit,
        ));
        let relay_flush = runtime.relay_flush();
        let mdns = match options.mdns {
            MdnsMode::Disabled => MulticastDnsMode::Disabled,
            MdnsMode::Query => MulticastDnsMode::QueryOnly,
            MdnsMode::QueryAndGather => MulticastDnsMode::QueryAndGather,
        };
        let settings = SettingEngineBuilder::new()
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            .with_ice_timeouts(
                Some(ICE_DISCONNECTED_TIMEOUT),
                Some(ICE_FAILED_TIMEOUT),
                Some(ICE_KEEPALIVE_INTERVAL),
            )
            .with_host_acceptance_min_wait(Some(Duration::ZERO))
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_relay_acceptance_min_wait(Some(if options.relay_only {
                Duration::ZERO
            } else {
                RELAY_ACCEPTANCE_WAIT
            }))
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_multicast_dns_mode(mdns)
            .with_sctp_max_receive_buffer_size(SCTP_RECEIVE_WINDOW as u32)
            .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(MAX_MESSAGE_BYTES as u32))
            .with_sctp_mtu(SCTP_MTU)
            // With a wildcard bind, an ICE restart binds the sockets again and gathers on the
            // addresses the host has then: a laptop that moved to another network carries on
            // over the new one. Sockets bound to one address cannot move; for them a restart
            // that discarded its candidates gathered none, so they keep theirs.
            .with_discard_local_candidates_during_ice_restart(options.bind_addrs.iter().any(
                |addr| {
                    addr.parse::<std::net::SocketAddr>()
                        .is_ok_and(|addr| addr.ip().is_unspecified())
                },
            ))
            .build();
        let servers = ice_servers
            .iter()
            .map(|server| RTCIceServer {
                urls: server.urls.clone(),
                username: server.username.clone().unwrap_or_default(),
                credential: server.credential.clone().unwrap_or_default(),
            })
            .collect();
        let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(servers);
        if options.relay_only {
            configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }
        let mid = Arc::new(std::sync::Mutex::new(String::from("0")));
        let waker = Arc::new(OnceLock::new());
        let handler = Arc::new(Handler {
            events: events_tx,
            waker: Arc::clone(&waker),
            mid: Arc::clone(&mid),
            max_message_bytes: MAX_MESSAGE_BYTES,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration.build())
            .with_setting_engine(settings)
            .with_runtime(runtime)
            .with_handler(handler)
            .with_udp_addrs(options.bind_addrs.clone())
            .with_data_channel_send_buffer_limit(options.send_buffer_bytes)
            .build()
            .await
            .map_err(rtc_error)?;
        Ok((
            Self {
                pc: Arc::new(pc),
                stats,
                relay_flush,
                probed_socket_buffer,
                mid,
                waker,
                closing,
            },
            events_rx,
        ))
    }

    /// Opens a reliable, ordered data channel: in-band (the peer learns of it
    /// from a DCEP OPEN) or, with `negotiated`, under that stream id, which
    /// the peer creates as well.
    pub(crate) async fn create_channel(
        &self,
        label: &str,
        negotiated: Option<u16>,
    ) -> Result<RtcChannel, Error> {
        let init = RTCDataChannelInit {
            ordered: true,
            negotiated,
            ..Default::default()
        };
        let dc = self
            .pc
            .create_data_channel(label, Some(init))
            .await
            .map_err(rtc_error)?;
        let _ = self.waker.set(Arc::clone(&dc));
        tokio::spawn(pump_until_open(Arc::clone(&dc)));
        Ok(RtcChannel::new(dc, label.to_owned(), MAX_MESSAGE_BYTES))
    }

    /// Creates an offer (restarting ICE if asked) and sets it as the local description.
    pub(crate) async fn create_offer(
        &self,
        ice_restart: bool,
    ) -> Result<SessionDescription, Error> {
        // The restart goes in the offer's options, not through `restart_ice()`: that one starts
        // gathering before the offer applies the restart, which then drops what was gathered,
        // and a restart by the side that made the first offer had no candidates at all.
        let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self.pc.create_offer(options).await.map_err(rtc_error)?;
        self.pc
            .set_local_description(offer.clone())
            .await
            .map_err(rtc_error)?;
        self.remember_mid(&offer.sdp);
        Ok(from_rtc(&offer))
    }

    /// Sets the remote description; for an offer, answers it and returns the answer.
    pub(crate) async fn accept_description(
        &self,
        description: SessionDescription,
    ) -> Result<Option<SessionDescription>, Error> {
        let is_offer = description.kind == SdpKind::Offer;
        self.pc
            .set_remote_description(to_rtc(description)?)
            .await
            .map_err(rtc_error)?;
        if !is_offer {
            return Ok(None);
        }
        let answer = self.pc.create_answer(None).await.map_err(rtc_error)?;
        self.pc
            .set_local_description(answer.clone())
            .await
            .map_err(rtc_error)?;
        self.remember_mid(&answer.sdp);
        Ok(Some(from_rtc(&answer)))
    }

    /// Drops a pending local offer (the polite side of an offer collision).
    pub(crate) async fn rollback(&self) -> Result<(), Error> {
        let rollback = to_rtc(SessionDescription {
            kind: SdpKind::Rollback,
            sdp: String::new(),
        })?;
        self.pc
            .set_local_description(rollback)
            .await
            .map_err(rtc_error)
    }

    /// Whether a local offer awaits its answer (signaling state `have-local-offer`).
    pub(crate) async fn has_pending_offer(&self) -> bool {
        matches!(
            self.pc.pending_local_description().await,
            Some(d) if d.sdp_type == RTCSdpType::Offer
        )
    }

    /// Whether a remote description has been set.
    pub(crate) async fn has_remote_description(&self) -> bool {
        self.pc.remote_description().await.is_some()
    }

    /// The DTLS fingerprint of the remote description, once one is set.
    pub(crate) async fn remote_fingerprint(&self) -> Option<String> {
        sdp_fingerprint(&self.pc.remote_description().await?.sdp)
    }

    /// Adds a candidate the other side trickled.
    pub(crate) async fn add_candidate(&self, candidate: IceCandidate) -> Result<(), Error> {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: candidate.username_fragment,
            url: None,
        };
        self.pc.add_ice_candidate(init).await.map_err(rtc_error)
    }

    /// The DTLS certificate fingerprints (`sha-256 AB:CD:...`) of both sides,
    /// once both descriptions are set. DTLS checks the other side's
    /// certificate against its fingerprint, so proving knowledge of a shared
    /// secret over these values authenticates the link end to end.
    pub(crate) async fn fingerprints(&self) -> Option<DtlsFingerprints> {
        let local = self.pc.local_description().await?;
        let remote = self.pc.remote_description().await?;
        Some(DtlsFingerprints {
            local: sdp_fingerprint(&local.sdp)?,
            remote: sdp_fingerprint(&remote.sdp)?,
        })
    }

    /// Whether the selected candidate pair runs through a TURN relay; `None`
    /// while no pair is selected.
    pub(crate) async fn path(&self) -> Option<LinkPath> {
        let pair = match self.pc.sctp().await {
            Some(sctp) => sctp
                .transport()
                .ice_transport()
                .get_selected_candidate_pair()
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let relayed = pair.as_ref().is_none_or(|pair| {
            pair.local().typ == RTCIceCandidateType::Relay
                || pair.remote().typ == RTCIceCandidateType::Relay
        });
        self.relay_flush.set(relayed);
        pair?;
        Some(if relayed {
            LinkPath::Relayed
        } else {
            LinkPath::Direct
        })
    }

    /// Datagram counters and buffer sizes.
    pub(crate) fn net_stats(&self) -> NetStats {
        NetStats {
            datagrams_sent: self.stats.datagrams_sent.load(Ordering::Relaxed),
            datagrams_received: self.stats.datagrams_received.load(Ordering::Relaxed),
            socket_receive_buffer: match self.stats.receive_buffer.load(Ordering::Relaxed) {
                0 => self.probed_socket_buffer,
                granted => granted,
            },
            sctp_receive_window: SCTP_RECEIVE_WINDOW,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }

    /// Closes the connection and its channels.
    pub(crate) async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.relay_flush.set(false);
        if let Err(err) = self.pc.close().await {
            tracing::debug!(%err, "closing the peer connection");
        }
    }

    fn remember_mid(&self, sdp: &str) {
        let mid = sdp
            .lines()
            .find_map(|line| line.strip_prefix("a=mid:"))
            .map(|mid| mid.trim().to_owned());
        if let (Some(mid), Ok(mut slot)) = (mid, self.mid.lock()) {
            *slot = mid;
        }
    }
}

/// Wakes the connection's driver every [`OPEN_PUMP_INTERVAL`] until `dc` opens.
///
/// The `webrtc` 0.21.1 driver sends packets that internal events queue (the
/// SCTP INIT once DTLS is up, the data-channel OPEN once SCTP is up) only
/// when it next wakes, and once ICE is connected its timer fires every
/// 200 ms: each of those steps waited up to 200 ms. Setting a channel's
/// buffered-amount threshold is a no-op that wakes the driver, so a short
/// pump while the channel opens flushes them at once. It stops when the
/// channel opens or closes, or after [`OPEN_PUMP_LIMIT`].
async fn pump_until_open(dc: Arc<dyn DataChannel>) {
    let deadline = tokio::time::Instant::now() + OPEN_PUMP_LIMIT;
    while tokio::time::Instant::now() < deadline {
        match dc.ready_state().await {
            Ok(RTCDataChannelState::Connecting) => {}
            _ => return,
        }
        if dc.set_buffered_amount_low_threshold(0).await.is_err() {
            return;
        }
        tokio::time::sleep(OPEN_PUMP_INTERVAL).await;
    }
}

fn rtc_error(err: webrtc::error::Error) -> Error {
    Error::Rtc(err.to_string())
}
