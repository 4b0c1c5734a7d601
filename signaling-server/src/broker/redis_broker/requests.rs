//! The requests of connections: join, signal, leave, and the end of a
//! connection.

use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use signaling_protocol::{ErrorCode, PeerId, ServerMessage, SignalData};
use tracing::warn;

use super::room_reply::RoomReply;
use super::{REQUEST_TIMEOUT, RedisBroker};
use crate::broker::redis_keys::{CONTROL, control, instance_channel, instance_peers, peer_entry};
use crate::broker::redis_pipe::Publish;
use crate::broker::redis_routes::Local;
use crate::broker::redis_scripts::{ADMIT, DISCONNECT, JOIN, LEAVE, SIGNAL};
use crate::broker::{ConnHandle, Rejection};
use crate::outbox::{CloseReason, SharedText};
use crate::registry::{RegistryError, new_peer_id, new_token, validate_room};

impl RedisBroker {
    pub(in crate::broker) async fn join(
        &self,
        conn: &ConnHandle,
        room: &str,
        resume: Option<&str>,
    ) -> Result<PeerId, Rejection> {
        validate_room(room)?;
        // Held until the peer is attached here (see `joins_in_flight.rs`).
        let _in_flight = self.joins.start();
        let limits = &self.settings.registry;
        let fresh_id = new_peer_id();
        let token = new_token();
        let joined_frame = ServerMessage::PeerJoined { peer_id: fresh_id }.to_json();
        let fresh_entry = peer_entry(&fresh_id.to_string(), room);
        let inst_key = instance_peers(&self.instance);
        self.admit(room, &fresh_entry).await?;
        let mut script = self.room_script(JOIN, room);
        script
            .0
            .arg(resume.unwrap_or(""))
            .arg(fresh_id.to_string())
            .arg(&token)
            .arg(&self.instance)
            .arg(conn.id)
            .arg(limits.max_peers_per_room)
            .arg(joined_frame);
        // On an error the script may still have run (the time allowed covers
        // the wait in the queue), so the record of the peer stays: if it did
        // join, it is this instance's until this instance goes away.
        let reply = self
            .run_room(room, script)
            .await
            .map_err(|err| self.unavailable(&err))?;
        let resumed = match reply.status.as_str() {
            "joined" => false,
            "resumed" => true,
            "room_full" => {
                self.control_set("SREM", &inst_key, &fresh_entry).await;
                return Err(RegistryError::RoomFull {
                    room: room.to_owned(),
                    limit: limits.max_peers_per_room,
                }
                .into());
            }
            other => return Err(self.bad_reply(other)),
        };
        let RoomReply {
            detail: peer,
            list: peers,
            backlog,
            ..
        } = reply;
        if resumed {
            self.control_set("SREM", &inst_key, &fresh_entry).await;
            self.control_set("SADD", &inst_key, &peer_entry(&peer, room))
                .await;
        }
        let peer_id: PeerId = peer.parse().map_err(|_| self.bad_reply(&peer))?;
        let peers = peers
            .iter()
            .map(|p| p.parse().map_err(|_| self.bad_reply(p)))
            .collect::<Result<Vec<PeerId>, _>>()?;
        let welcome = ServerMessage::Welcome {
            peer_id,
            room: room.to_owned(),
            peers,
            ice_servers: self.settings.ice.servers_for(peer_id),
            resume_token: token.clone(),
            resumed,
            limits: self.settings.limits,
        };
        self.attach(conn, room, peer_id, token, welcome, backlog);
        self.metrics.joins.increment(1);
        if resumed {
            self.metrics.resumes.increment(1);
        }
        Ok(peer_id)
    }

    /// Counts a join into `room` against `--max-rooms` and records the
    /// joining peer (`entry`) as this instance's, before the room script runs.
    async fn admit(&self, room: &str, entry: &str) -> Result<(), Rejection> {
        let max_rooms = self.settings.registry.max_rooms;
        let mut admit = redis::cmd("EVAL");
        admit
            .arg(ADMIT)
            .arg(1)
            .arg(CONTROL)
            .arg(room)
            .arg(max_rooms)
            .arg(&self.instance)
            .arg(entry);
        let admitted: i64 = self
            .call(admit, CONTROL)
            .await
            .map_err(|err| self.unavailable(&err))?;
        if admitted == 0 {
            return Err(RegistryError::TooManyRooms { limit: max_rooms }.into());
        }
        Ok(())
    }

    /// Queues the welcome and the frames kept while the peer was away, and
    /// routes the peer to `conn`; a connection it had here before is closed
    /// (a resume on the same instance takes it over).
    fn attach(
        &self,
        conn: &ConnHandle,
        room: &str,
        peer_id: PeerId,
        token: String,
        welcome: ServerMessage,
        backlog: Vec<String>,
    ) {
        conn.outbox.push(SharedText::from(welcome.to_json()));
        for frame in backlog {
            conn.outbox.push(SharedText::from(frame));
        }
        let previous = self.lock().attach(
            peer_id,
            Local {
                conn: conn.clone(),
                room: Arc::from(room),
                token,
            },
        );
        if let Some(old) = previous.filter(|old| old.conn != *conn) {
            old.conn.outbox.close(CloseReason::Replaced);
        }
    }

    pub(in crate::broker) async fn signal(
        &self,
        conn: &ConnHandle,
        from: PeerId,
        to: PeerId,
        data: SignalData,
    ) -> Result<(), Rejection> {
        let (room, route, epoch) = {
            let local = self.lock();
            let room = match local.get(&from) {
                Some(entry) if entry.conn == *conn => entry.room.clone(),
                _ => return Err(RegistryError::NotJoined("signal").into()),
            };
            if to == from {
                return Err(RegistryError::SignalToSelf(to).into());
            }
            // Both ends here: deliver without a round trip to Redis.
            if let Some(target) = local.get(&to).filter(|t| t.room == room) {
                let frame = SharedText::from(ServerMessage::Signal { from, data }.to_json());
                target.conn.outbox.push(frame);
                self.metrics.signals_relayed.increment(1);
                return Ok(());
            }
            let (route, epoch) = local.route(&room, &to);
            (room, route, epoch)
        };
        let frame = ServerMessage::Signal { from, data }.to_json();
        if let Some(channel) = route {
            // A known route: one publish, not waited for.
            let payload = format!("S {to} {room}\n{frame}");
            let publish = Publish {
                channel,
                payload,
                room,
            };
            self.pipe
                .publish(publish, REQUEST_TIMEOUT)
                .await
                .map_err(|err| self.not_carried(self.unavailable(&err), to))?;
            self.metrics.signals_relayed.increment(1);
            return Ok(());
        }
        let mut script = self.room_script(SIGNAL, &room);
        script
            .0
            .arg(from.to_string())
            .arg(to.to_string())
            .arg(frame);
        let reply = self
            .run_room(&room, script)
            .await
            .map_err(|err| self.not_carried(self.unavailable(&err), to))?;
        match reply.status.as_str() {
            "ok" => {
                if !reply.detail.is_empty() {
                    let channel = Arc::from(instance_channel(&reply.detail));
                    self.lock().learn(&room, to, channel, epoch);
                }
                self.metrics.signals_relayed.increment(1);
                Ok(())
            }
            // Soon after Redis lost its data, the addressee's instance may not
            // have put its peers back yet: the signal is not carried, to be
            // sent again, rather than the peer declared gone.
            "unknown_peer" if self.recently_restored() => Err(recovering(to)),
            "unknown_peer" => Err(RegistryError::UnknownPeer {
                peer: to,
                room: room.to_string(),
            }
            .into()),
            // Attached here but unknown to Redis: Redis lost its data and this
            // instance has not put its peers back yet (or was taken for dead).
            "not_joined" => Err(recovering(to)),
            other => Err(self.bad_reply(other)),
        }
    }

    /// Whether this instance is putting its peers back after Redis lost its
    /// data, or did so within one liveness period: every live instance has
    /// done the same by then.
    fn recently_restored(&self) -> bool {
        self.restored_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < self.liveness)
    }

    /// Notes that this instance is putting (or has just put) its peers back.
    pub(super) fn mark_restored(&self) {
        *self
            .restored_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::time::Instant::now());
    }

    pub(in crate::broker) async fn leave(
        &self,
        conn: &ConnHandle,
        peer: PeerId,
    ) -> Result<(), Rejection> {
        let Some(local) = self.lock().detach(peer, conn) else {
            return Err(RegistryError::NotJoined("leave").into());
        };
        let mut script = self.room_script(LEAVE, &local.room);
        script
            .0
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id);
        // On an error the peer may still be in Redis, attached here: its
        // record stays, so it leaves when this instance goes away at last.
        self.run_room(&local.room, script)
            .await
            .map_err(|err| self.unavailable(&err))?;
        self.control_set(
            "SREM",
            &instance_peers(&self.instance),
            &peer_entry(&peer.to_string(), &local.room),
        )
        .await;
        Ok(())
    }

    pub(in crate::broker) async fn disconnect(&self, conn: &ConnHandle, peer: PeerId) {
        let Some(local) = self.lock().detach(peer, conn) else {
            return;
        };
        let grace = self.settings.registry.resume_grace;
        let entry = peer_entry(&peer.to_string(), &local.room);
        // The deadline is recorded before the peer is marked absent, so
        // every absent peer has one even if this instance stops in between.
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(grace)
            .as_millis();
        let mut absent = redis::cmd("ZADD");
        absent
            .arg(control("absent"))
            .arg(u64::try_from(deadline).unwrap_or(u64::MAX))
            .arg(&entry);
        let mut script = self.room_script(DISCONNECT, &local.room);
        script
            .0
            .arg(peer.to_string())
            .arg(&self.instance)
            .arg(conn.id)
            .arg(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
        let result = async {
            self.call::<i64>(absent, CONTROL).await?;
            self.run_room(&local.room, script).await
        }
        .await;
        if let Err(err) = result {
            self.metrics.redis_errors.increment(1);
            warn!(%err, %peer, "cannot mark a peer absent in Redis; it leaves when this instance is taken for dead");
            return;
        }
        self.control_set("SREM", &instance_peers(&self.instance), &entry)
            .await;
    }
}

/// A signal to `to` not carried while the room store recovers: the sender
/// negotiates again a little later (protocol.md, `internal`).
fn recovering(to: PeerId) -> Rejection {
    Rejection {
        code: ErrorCode::Internal,
        message: "the room store is recovering; try again shortly".into(),
        peer_id: Some(to),
    }
}
