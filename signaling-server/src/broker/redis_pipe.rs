//! One ordered, bounded queue of the commands an instance sends Redis for
//! connections, written out in batches: every command that waits in the
//! queue when the previous batch is answered goes out in one pipeline (one
//! write, one read of all replies). Under load that is one system call for
//! hundreds of signals instead of one round trip each.
//!
//! Order is kept: commands run in Redis in the order they were queued, so
//! signals sent the fast way (a publish to a known route) and the slow way
//! (a script) from one connection cannot overtake each other. On a cluster
//! the order holds among the commands of one hash tag (one room, one
//! instance channel), which is all a connection's signals need.

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::redis_link::{RedisLink, copy_error};

/// Commands waiting before a connection's next one waits for room.
pub(super) const QUEUE_COMMANDS: usize = 8192;

/// Most commands in one pipeline.
const BATCH: usize = 512;

/// A publish of a frame to the instance a route or a script names.
#[derive(Debug)]
pub(super) struct Publish {
    /// The instance's channel.
    pub(super) channel: Arc<str>,
    /// `S PEER ROOM\nFRAME` (a signal), `F PEER ROOM\nFRAME` (a room
    /// event), `R PEER CONN` or `L PEER ROOM`.
    pub(super) payload: String,
    /// The room of the peer it concerns, to hand a frame on when nobody
    /// heard it.
    pub(super) room: Arc<str>,
}

/// One queued command.
#[derive(Debug)]
pub(super) enum Command {
    /// Sent without waiting for the reply; one that reached nobody comes
    /// back from [`PipeReceiver::run_batch`].
    Publish(Publish),
    /// A script or other command whose reply the sender awaits.
    Call {
        /// The command.
        cmd: Cmd,
        /// The key it routes by on a cluster.
        route: Arc<str>,
        /// Where its reply goes.
        reply: oneshot::Sender<RedisResult<Value>>,
    },
}

/// The sending end of the queue.
#[derive(Debug)]
pub(super) struct CommandPipe {
    sender: mpsc::Sender<Command>,
}

/// The receiving end, for the one task that empties the queue; it stops
/// when the [`CommandPipe`] is dropped.
#[derive(Debug)]
pub(super) struct PipeReceiver {
    receiver: mpsc::Receiver<Command>,
}

/// An empty queue: its sending end, and the receiving end for its task.
pub(super) fn command_pipe() -> (CommandPipe, PipeReceiver) {
    let (sender, receiver) = mpsc::channel(QUEUE_COMMANDS);
    (CommandPipe { sender }, PipeReceiver { receiver })
}

/// Why a queued command did not run.
#[derive(Debug, thiserror::Error)]
pub(super) enum PipeError {
    /// The queue stayed full for the whole timeout.
    #[error("too many requests waiting for Redis")]
    Full,
    /// The task that empties the queue has stopped (shutdown).
    #[error("the Redis pipeline has stopped")]
    Stopped,
    /// Redis answered with an error, or not in time.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl CommandPipe {
    /// Queues a `PUBLISH`, waiting at most `timeout` for room.
    pub(super) async fn publish(
        &self,
        publish: Publish,
        timeout: Duration,
    ) -> Result<(), PipeError> {
        self.enqueue(Command::Publish(publish), timeout).await
    }

    /// Queues `cmd`, which routes by the key `route`, and waits for its
    /// reply, at most `timeout` in all.
    pub(super) async fn call(
        &self,
        cmd: Cmd,
        route: Arc<str>,
        timeout: Duration,
    ) -> Result<Value, PipeError> {
        let (reply, answer) = oneshot::channel();
        let call = async {
            self.enqueue(Command::Call { cmd, route, reply }, timeout)
                .await?;
            answer
                .await
                .map_err(|_| PipeError::Stopped)?
                .map_err(PipeError::from)
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(PipeError::Full))
    }

    async fn enqueue(&self, command: Command, timeout: Duration) -> Result<(), PipeError> {
        match self.sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PipeError::Stopped),
            Err(mpsc::error::TrySendError::Full(command)) => {
                match tokio::time::timeout(timeout, self.sender.send(command)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(PipeError::Stopped),
                    Err(_) => Err(PipeError::Full),
                }
            }
        }
    }
}

impl PipeReceiver {
    /// Waits for queued commands, sends up to a batch of them as one
    /// pipeline (one per hash tag on a cluster), hands every reply to its
    /// caller, and returns the publishes that reached no subscriber (the
    /// instance is gone; the caller routes them again). `None` when the
    /// queue is closed.
    pub(super) async fn run_batch(
        &mut self,
        redis: &mut RedisLink,
        timeout: Duration,
    ) -> Option<Result<Vec<Publish>, redis::RedisError>> {
        let mut batch = Vec::with_capacity(BATCH);
        if self.receiver.recv_many(&mut batch, BATCH).await == 0 {
            return None;
        }
        // The commands move into the pipeline; what waits for each reply stays.
        let mut commands = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for command in batch {
            match command {
                Command::Publish(publish) => {
                    let cmd = redis.publish(&publish.channel, &publish.payload);
                    commands.push((cmd, publish.channel.clone()));
                    waiting.push(Waiting::Publish(publish));
                }
                Command::Call { cmd, route, reply } => {
                    commands.push((cmd, route));
                    waiting.push(Waiting::Call(reply));
                }
            }
        }
        let answer = within(timeout, redis.run_all(commands)).await;
        let replies = match answer {
            Ok(replies) if replies.len() != waiting.len() => Err(redis::RedisError::from(
                std::io::Error::other("Redis answered a pipeline with the wrong number of replies"),
            )),
            other => other,
        };
        let replies = match replies {
            Ok(replies) => replies,
            Err(err) => {
                for waiter in waiting {
                    if let Waiting::Call(reply) = waiter {
                        let _ = reply.send(Err(copy_error(&err)));
                    }
                }
                return Some(Err(err));
            }
        };
        let mut unheard = Vec::new();
        for (waiter, reply) in waiting.into_iter().zip(replies) {
            match waiter {
                Waiting::Publish(publish) => {
                    if matches!(reply, Ok(Value::Int(0))) {
                        unheard.push(publish);
                    }
                }
                Waiting::Call(to) => {
                    let _ = to.send(reply);
                }
            }
        }
        Some(Ok(unheard))
    }
}

/// What waits for one reply of a pipeline.
enum Waiting {
    /// A publish, handed back if it reached nobody.
    Publish(Publish),
    /// A caller.
    Call(oneshot::Sender<RedisResult<Value>>),
}

/// `request`, failing with a timeout error after `limit`.
pub(super) async fn within<T>(
    limit: Duration,
    request: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(limit, request)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer from Redis in time",
            )))
        })
}
