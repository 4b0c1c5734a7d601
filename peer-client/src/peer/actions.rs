//! Carrying out what the negotiator decided: the link task's actions that
//! touch the engine (roll back, apply, offer, start over on a new
//! connection, report, give up).

use std::sync::Arc;

use tokio::sync::watch;

use super::LinkTask;
use super::channel_watch::Fate;
use super::negotiator::{Action, GiveUp};
use crate::engine::RtcConnection;
use crate::error::Error;
use crate::event::Event;
use crate::link_state::LinkState;
use crate::signal::{PeerSignal, SdpKind, SessionDescription};

impl LinkTask {
    /// Carries out the negotiator's actions in order; `description` is the
    /// peer's, for [`Action::Apply`]. Stops at the first failure.
    pub(super) async fn execute(
        &mut self,
        actions: Vec<Action>,
        mut description: Option<SessionDescription>,
    ) -> Result<(), Error> {
        for action in actions {
            match action {
                Action::Rollback => self.connection.rollback().await?,
                Action::Apply => {
                    if let Some(description) = description.take() {
                        self.apply(description).await?;
                    }
                }
                Action::SendOffer { ice_restart } => self.send_offer(ice_restart).await?,
                Action::Rebuild => {
                    if let Err(err) = self.rebuild().await {
                        // The link cannot go on: give it up, and do nothing more.
                        let failed = self.negotiator.rebuild_failed(&err.to_string());
                        self.give_up(failed).await;
                        return Ok(());
                    }
                }
                Action::Report(state) => {
                    let path = match state {
                        LinkState::Connected => self.connection.path().await,
                        _ => None,
                    };
                    self.report(Event::LinkState {
                        peer: self.remote,
                        state,
                        path,
                    })
                    .await;
                }
                Action::Refuse(why) => return Err(Error::BadSignal(why)),
                Action::GiveUp(failed) => self.give_up(failed).await,
            }
        }
        Ok(())
    }

    /// Applies the peer's description, answers an offer (with the negotiated
    /// channels created first) and adds the candidates held back.
    async fn apply(&mut self, description: SessionDescription) -> Result<(), Error> {
        let is_offer = description.kind == SdpKind::Offer;
        let answer = self.connection.accept_description(description).await?;
        if is_offer {
            self.create_negotiated_channels().await?;
        }
        while let Some(candidate) = self.early_candidates.pop_front() {
            if let Err(err) = self.connection.add_candidate(candidate).await {
                tracing::debug!(%err, "queued candidate refused");
            }
        }
        if let Some(answer) = answer {
            self.send(PeerSignal::Description(answer));
        }
        Ok(())
    }

    /// Replaces the connection with a new one (new certificate, fresh ICE)
    /// and creates this side's channels on it again. Sends no offer.
    async fn rebuild(&mut self) -> Result<(), Error> {
        let (connection, events) =
            RtcConnection::new(&self.ctx.options, &self.ctx.ice_servers).await?;
        self.fate.send_replace(Fate::Replaced);
        self.fate = watch::Sender::new(Fate::Current);
        let old = std::mem::replace(&mut self.connection, Arc::new(connection));
        if let Ok(mut current) = self.current.lock() {
            *current = Arc::clone(&self.connection);
        }
        self.rtc_events = events;
        self.negotiated_created = false;
        tokio::spawn(async move { old.close().await });
        self.early_candidates.clear();
        self.create_own_channels().await
    }

    /// Creates the channels this side opened before the link connected, and
    /// the negotiated ones.
    pub(super) async fn create_own_channels(&mut self) -> Result<(), Error> {
        for label in self.own_labels.clone() {
            let channel = self.connection.create_channel(&label, None).await?;
            self.watch_channel(channel, false);
        }
        self.create_negotiated_channels().await
    }

    /// Creates the negotiated channels on the current connection, once: the
    /// offering side before its first offer, the answering side when it
    /// answers one (its channels then exist before the association is up).
    async fn create_negotiated_channels(&mut self) -> Result<(), Error> {
        if self.negotiated_created {
            return Ok(());
        }
        self.negotiated_created = true;
        for negotiated in self.ctx.negotiated_channels.clone() {
            let channel = self
                .connection
                .create_channel(&negotiated.label, Some(negotiated.id))
                .await?;
            self.watch_channel(channel, false);
        }
        Ok(())
    }

    /// Ends the link's channels and reports the link failed for good.
    async fn give_up(&mut self, GiveUp { why, report_failed }: GiveUp) {
        self.fate.send_replace(Fate::Failed);
        tracing::warn!(peer = %self.remote, %why, "giving up on the link");
        if report_failed {
            self.report(Event::LinkState {
                peer: self.remote,
                state: LinkState::Failed,
                path: None,
            })
            .await;
        }
        self.report(Event::PeerError {
            peer: self.remote,
            error: why,
        })
        .await;
    }

    pub(super) async fn send_offer(&mut self, ice_restart: bool) -> Result<(), Error> {
        let offer = self.connection.create_offer(ice_restart).await?;
        self.send(PeerSignal::Description(offer));
        Ok(())
    }
}
