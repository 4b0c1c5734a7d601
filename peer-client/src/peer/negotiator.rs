//! What a link decides, without an engine, a socket or a clock: perfect
//! negotiation (glare and rollback), ICE restarts, starting over on a new
//! connection after a failed DTLS handshake, and the deadlines that drive
//! them. The link task feeds it the peer's signals, the engine's events and
//! the time, with what the engine says of the current connection
//! ([`Facts`]), and carries out the [`Action`]s it returns.
//!
//! The policy (docs/webrtc-engine.md, "Negotiation"; what a failed link
//! does is the table "When a link fails" in docs/protocol.md, which the web
//! client follows too):
//! - the polite side (the larger id) yields in an offer collision: it rolls
//!   its own offer back and answers; the impolite side ignores the other offer;
//! - after an ICE failure the impolite side restarts ICE; a side that lost
//!   one of its addresses restarts at once, polite or not, and so does a
//!   side that gains one while the link is down; at most
//!   [`MAX_ICE_RESTARTS`] until the link is connected again;
//! - a DTLS handshake that fails before the link ever connected starts over
//!   on a new connection: the side that made the first offer rebuilds and
//!   offers again, the other side rebuilds when an offer carries a new
//!   certificate; at most [`MAX_REBUILDS`] times;
//! - after signals were lost (signaling resumed, or the server could not
//!   carry one), a link not yet connected offers again.

use std::time::{Duration, Instant};

use crate::link_state::LinkState;
use crate::local_addresses::AddressChange;

/// ICE restarts tried (after a failure, or when this host lost an address) until
/// the link is connected again.
pub(crate) const MAX_ICE_RESTARTS: u32 = 2;
/// How long after ICE connects the DTLS handshake may take. The DTLS client
/// of `webrtc` 0.21.1 resends a flight every second, seven times, so one
/// flight without an answer fails it after 8 s; the rest of a handshake is
/// two round trips. A handshake not done by then has failed (or will).
pub(crate) const DTLS_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Extra time the answering side gives the offering side to start over
/// before it reports the link failed.
pub(crate) const DTLS_REBUILD_GRACE: Duration = Duration::from_secs(5);
/// First wait before negotiating again after the server could not carry a
/// signal of this link; it doubles up to [`MAX_RESEND_WAIT`] while signals
/// keep getting lost.
pub(crate) const FIRST_RESEND_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between such attempts.
pub(crate) const MAX_RESEND_WAIT: Duration = Duration::from_secs(8);
/// New connections tried after failed DTLS handshakes before the link gives up.
pub(crate) const MAX_REBUILDS: u32 = 2;

/// What the engine says of the current connection when an input arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// Our offer is out and not answered yet.
    pub(crate) pending_offer: bool,
    /// The peer's description is applied.
    pub(crate) has_remote_description: bool,
    /// The DTLS fingerprint of the peer's applied description.
    pub(crate) remote_fingerprint: Option<String>,
}

/// A description from the peer, as the negotiator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Description {
    /// An offer (else an answer).
    pub(crate) offer: bool,
    /// The DTLS fingerprint it carries.
    pub(crate) fingerprint: Option<String>,
}

/// Something for the link task to do, in order. If one fails, the rest of
/// the list is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Roll our pending offer back.
    Rollback,
    /// Apply the peer's description; answer it if it is an offer (creating
    /// the negotiated channels first), then add the candidates held back.
    Apply,
    /// Send a new offer.
    SendOffer {
        /// Restart ICE with it (new credentials, candidates gathered again).
        ice_restart: bool,
    },
    /// Replace the connection by a new one (new certificate, fresh ICE) and
    /// create this side's channels on it again; forget held candidates. On
    /// failure, tell the negotiator ([`Negotiator::rebuild_failed`]).
    Rebuild,
    /// Report this link state to the application.
    Report(LinkState),
    /// The peer broke the protocol: report it, keep the link as it is.
    Refuse(String),
    /// The link has failed for good.
    GiveUp(GiveUp),
}

/// A link that failed for good: end its channels, report `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GiveUp {
    /// What went wrong, for the application.
    pub(crate) why: String,
    /// Report [`LinkState::Failed`] first (not reported yet).
    pub(crate) report_failed: bool,
}

/// What to do with a trickled candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CandidateStep {
    /// Hold it until the peer's description is applied.
    Hold,
    /// Add it; a refusal is an error unless `refusal_expected` (it belongs
    /// to an offer this side ignored).
    Add {
        /// The engine may refuse it without anything being wrong.
        refusal_expected: bool,
    },
}

/// The negotiation state of one link.
#[derive(Debug)]
pub(crate) struct Negotiator {
    /// The polite side yields in an offer collision.
    polite: bool,
    /// This side made the first offer; it starts over after a failed handshake.
    initiator: bool,
    /// Set while a colliding offer is ignored (impolite side).
    ignore_offer: bool,
    restarts: u32,
    /// Connections replaced after a failed DTLS handshake.
    rebuilds: u32,
    /// The link has been connected at least once; it is never rebuilt then
    /// (its fingerprints may already authenticate the application's data).
    connected_once: bool,
    /// When the DTLS handshake of the current connection counts as failed.
    handshake_deadline: Option<Instant>,
    /// When to negotiate again because the server lost a signal.
    resend_at: Option<Instant>,
    /// The wait before the next such attempt.
    resend_wait: Duration,
    /// Remote fingerprints of connections this side left; descriptions that
    /// carry them are late and ignored.
    left_fingerprints: Vec<String>,
    reported_state: Option<LinkState>,
    /// The engine's last link state, reported or not.
    engine_state: Option<LinkState>,
}

impl Negotiator {
    /// A link whose first offer comes from this side (`initiator`) or the
    /// peer; `polite` if this side's id is the larger.
    pub(crate) fn new(polite: bool, initiator: bool) -> Self {
        Self {
            polite,
            initiator,
            ignore_offer: false,
            restarts: 0,
            rebuilds: 0,
            connected_once: false,
            handshake_deadline: None,
            resend_at: None,
            resend_wait: FIRST_RESEND_WAIT,
            left_fingerprints: Vec::new(),
            reported_state: None,
            engine_state: None,
        }
    }

    /// The link has been connected at least once.
    pub(crate) fn connected_once(&self) -> bool {
        self.connected_once
    }

    /// The earliest deadline, for [`Negotiator::on_deadline`].
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.handshake_deadline, self.resend_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A description from the peer.
    pub(crate) fn on_description(
        &mut self,
        now: Instant,
        description: &Description,
        facts: &Facts,
    ) -> Vec<Action> {
        if description
            .fingerprint
            .as_ref()
            .is_some_and(|fp| self.left_fingerprints.contains(fp))
        {
            tracing::debug!("ignoring a description of a connection this side left");
            return Vec::new();
        }
        let mut actions = Vec::new();
        let mut pending_offer = facts.pending_offer;
        if description.offer
            && let Some(offered) = &description.fingerprint
            && let Some(current) = &facts.remote_fingerprint
            && offered != current
        {
            // The peer started over on a new connection.
            if self.connected_once {
                return vec![Action::Refuse(
                    "the peer changed its DTLS certificate on an established link".into(),
                )];
            }
            if self.rebuilds >= MAX_REBUILDS {
                return self.give_up(format!(
                    "the peer started over more than {MAX_REBUILDS} times"
                ));
            }
            tracing::info!(
                offered,
                "the peer started over on a new connection; so does this side"
            );
            actions.push(self.rebuild(now, facts));
            pending_offer = false;
        }
        let collision = description.offer && pending_offer;
        self.ignore_offer = !self.polite && collision;
        if self.ignore_offer {
            tracing::debug!("ignoring a colliding offer (impolite side)");
            return actions;
        }
        if collision {
            tracing::debug!("offer collision: rolling back ours (polite side)");
            actions.push(Action::Rollback);
        }
        actions.push(Action::Apply);
        if self.connected_once && self.reported_state == Some(LinkState::Disconnected) {
            // The peer took part in an ICE restart: the link is being set up again.
            self.reported_state = Some(LinkState::Connecting);
            actions.push(Action::Report(LinkState::Connecting));
        }
        actions
    }

    /// A trickled candidate from the peer.
    pub(crate) fn on_candidate(&self, facts: &Facts) -> CandidateStep {
        if facts.has_remote_description {
            CandidateStep::Add {
                refusal_expected: self.ignore_offer,
            }
        } else {
            CandidateStep::Hold
        }
    }

    /// ICE found a working pair.
    pub(crate) fn on_ice_connected(&mut self, now: Instant) {
        if !self.connected_once {
            self.arm_handshake_deadline(now, Duration::ZERO);
        }
    }

    /// The connection stopped on an error (DTLS ran out of retransmissions,
    /// or the association failed).
    pub(crate) fn on_stopped(&mut self, now: Instant, facts: &Facts) -> Vec<Action> {
        if self.connected_once {
            self.give_up("the connection stopped on an error".into())
        } else if self.initiator {
            self.handshake_failed(now, facts, "it ran out of retransmissions")
        } else {
            if self.handshake_deadline.is_none() {
                // The offering side starts over; wait for its offer.
                self.arm_handshake_deadline(now, Duration::ZERO);
            }
            Vec::new()
        }
    }

    /// The engine's link state changed.
    pub(crate) fn on_state(&mut self, state: LinkState) -> Vec<Action> {
        self.engine_state = Some(state);
        // An established link restarting ICE is not reported as connecting on its own
        // say: only once the peer has answered or offered (`on_description`), which
        // shows it is alive. A peer that was killed stays disconnected.
        if self.reported_state == Some(state)
            || (state == LinkState::Connecting && self.connected_once)
        {
            return Vec::new();
        }
        self.reported_state = Some(state);
        if state == LinkState::Connected {
            self.restarts = 0;
            self.resend_wait = FIRST_RESEND_WAIT;
            self.connected_once = true;
            self.handshake_deadline = None;
        }
        let mut actions = vec![Action::Report(state)];
        // The impolite side restarts ICE; the other side answers the new offer. (An
        // outage shorter than ICE's failure timeout heals by itself; a restart while
        // the path is still down would only spend its checks.)
        if state == LinkState::Failed && !self.polite {
            actions.extend(self.restart_ice("ICE failed"));
        }
        actions
    }

    /// This host's addresses changed (checked only once connected). A lost
    /// address may have taken the link's path with it: whichever side this
    /// is, it offers a new ICE session over the addresses it has now instead
    /// of waiting seconds for ICE to miss the old path. A new address alone
    /// is no reason to move a working link, but while the link is down it
    /// restarts ICE too: a restart made before the address came (a host
    /// between networks, an address assigned late) had no candidate on it.
    pub(crate) fn on_addresses_changed(&mut self, change: AddressChange) -> Vec<Action> {
        if change.lost {
            self.restart_ice("an address of this host went away")
        } else if change.gained && self.engine_state != Some(LinkState::Connected) {
            self.restart_ice("this host has a new address while the link is down")
        } else {
            Vec::new()
        }
    }

    /// The signaling connection came back with the same id: signals sent
    /// while it was down may be lost.
    pub(crate) fn on_signaling_resumed(&mut self, facts: &Facts) -> Vec<Action> {
        self.renegotiate(facts)
    }

    /// The server could not carry a signal of this link: negotiate again a
    /// little later (backing off while it keeps happening).
    pub(crate) fn on_signal_lost(&mut self, now: Instant) {
        if self.resend_at.is_none() {
            self.resend_at = Some(now + self.resend_wait);
            self.resend_wait = (self.resend_wait * 2).min(MAX_RESEND_WAIT);
        }
    }

    /// Time passed: acts on the deadlines that are due at `now`.
    pub(crate) fn on_deadline(&mut self, now: Instant, facts: &Facts) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.handshake_deadline.is_some_and(|at| at <= now) {
            self.handshake_deadline = None;
            actions.extend(self.handshake_failed(now, facts, "it did not complete in time"));
        }
        if self.resend_at.is_some_and(|at| at <= now) {
            // Signals lost in the server are as good as lost while signaling
            // was away: the same steps recover.
            self.resend_at = None;
            actions.extend(self.renegotiate(facts));
        }
        actions
    }

    /// Carrying out [`Action::Rebuild`] failed: the link cannot go on.
    pub(crate) fn rebuild_failed(&mut self, error: &str) -> GiveUp {
        self.failed(format!("could not start a new connection: {error}"))
    }

    /// Offers a new ICE session while restarts remain; perfect negotiation
    /// settles an offer that crosses the peer's.
    fn restart_ice(&mut self, why: &str) -> Vec<Action> {
        if self.restarts >= MAX_ICE_RESTARTS {
            return Vec::new();
        }
        self.restarts += 1;
        tracing::info!(attempt = self.restarts, why, "restarting ICE");
        vec![Action::SendOffer { ice_restart: true }]
    }

    /// After signals were lost, a link still negotiating may wait forever
    /// for an offer, answer or candidates that are gone. The side holding an
    /// unanswered offer makes a fresh one; if both sides have answered but
    /// the link is not up, the impolite side restarts ICE. Both offers
    /// restart ICE, so the candidates are gathered and sent again.
    fn renegotiate(&mut self, facts: &Facts) -> Vec<Action> {
        if self.reported_state == Some(LinkState::Connected) {
            return Vec::new();
        }
        if facts.pending_offer {
            tracing::info!("signals were lost mid-negotiation; offering again");
            vec![Action::Rollback, Action::SendOffer { ice_restart: true }]
        } else if !self.polite && facts.has_remote_description {
            tracing::info!("signals were lost before the link came up; restarting ICE");
            vec![Action::SendOffer { ice_restart: true }]
        } else {
            Vec::new()
        }
    }

    /// Starts the DTLS deadline of the current connection, `extra` later
    /// than usual. The answering side waits longer: the offering side is the
    /// one that starts over.
    fn arm_handshake_deadline(&mut self, now: Instant, extra: Duration) {
        let wait = if self.initiator {
            DTLS_HANDSHAKE_DEADLINE
        } else {
            DTLS_HANDSHAKE_DEADLINE + DTLS_REBUILD_GRACE
        };
        self.handshake_deadline = Some(now + wait + extra);
    }

    /// The DTLS handshake of the current connection failed (`why`) before the
    /// link ever connected. The offering side builds a new connection and
    /// offers it while attempts remain; the answering side gives up, since the
    /// offering side did not start over in time.
    fn handshake_failed(&mut self, now: Instant, facts: &Facts, why: &str) -> Vec<Action> {
        if self.connected_once {
            return Vec::new();
        }
        tracing::warn!(why, attempt = self.rebuilds, "DTLS handshake failed");
        if !self.initiator || self.rebuilds >= MAX_REBUILDS {
            return self.give_up(format!(
                "the DTLS handshake failed ({why}) on {} connection(s)",
                self.rebuilds + 1
            ));
        }
        vec![
            self.rebuild(now, facts),
            Action::SendOffer { ice_restart: false },
        ]
    }

    /// Counts a new connection and bounds it in time even if it never gets
    /// as far as ICE (its offer or answer lost, or refused); ICE connecting
    /// re-arms the deadline.
    fn rebuild(&mut self, now: Instant, facts: &Facts) -> Action {
        self.rebuilds += 1;
        if let Some(left) = &facts.remote_fingerprint
            && !self.left_fingerprints.contains(left)
        {
            self.left_fingerprints.push(left.clone());
        }
        self.ignore_offer = false;
        self.arm_handshake_deadline(now, DTLS_REBUILD_GRACE);
        tracing::info!(
            attempt = self.rebuilds,
            "new connection after a failed DTLS handshake"
        );
        Action::Rebuild
    }

    /// The link failed for good.
    fn give_up(&mut self, why: String) -> Vec<Action> {
        vec![Action::GiveUp(self.failed(why))]
    }

    fn failed(&mut self, why: String) -> GiveUp {
        self.handshake_deadline = None;
        let report_failed = self.reported_state != Some(LinkState::Failed);
        self.reported_state = Some(LinkState::Failed);
        GiveUp { why, report_failed }
    }
}

#[cfg(test)]
mod tests;
