//! One handle on Redis, whether a single server or a Redis Cluster: the
//! broker runs commands, pipelines and scripts through it alike, and reads
//! its instance channel from the pushes it forwards (RESP3).
//!
//! `--redis` takes one address or several separated by commas. Several
//! addresses, or one server that reports `cluster_enabled:1`, mean a
//! cluster: commands go to the shard of their hash tag, and the instance
//! channel is a sharded channel (`SSUBSCRIBE`/`SPUBLISH`), so a frame
//! reaches only the shard that holds the channel, not every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushInfo, RedisFuture, RedisResult, Value};

use super::redis_keys::hash_tag;

/// Redis, one server or a cluster.
#[derive(Clone)]
pub(super) enum RedisLink {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

/// Where the pushes of a connection go; never blocks the connection.
pub(super) type PushSink = Box<dyn Fn(PushInfo) + Send + Sync>;

impl RedisLink {
    /// Connects to `urls` (comma-separated), each request bounded by
    /// `timeout`; pushes (the channel's messages) go to `sink`.
    pub(super) async fn connect(
        urls: &str,
        timeout: Duration,
        sink: PushSink,
    ) -> RedisResult<Self> {
        let seeds: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(with_resp3)
            .collect();
        let sink = std::sync::Arc::new(sink);
        let forward = {
            let sink = sink.clone();
            move |info: PushInfo| -> Result<(), std::convert::Infallible> {
                sink(info);
                Ok(())
            }
        };
        if seeds.len() == 1 && !reports_cluster(&seeds[0], timeout).await? {
            let client = redis::Client::open(seeds[0].as_str())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_max_delay(Duration::from_secs(1))
                .set_push_sender(forward)
                .set_automatic_resubscription();
            let manager = ConnectionManager::new_with_config(client, config).await?;
            return Ok(Self::Single(manager));
        }
        let client = ClusterClientBuilder::new(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(forward)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // No retries: after a dropped connection or a timeout the client
            // would send a request again that may already have run, and the
            // room scripts are not idempotent (a resume run twice joins a
            // fresh peer). A failed request is an error to its caller instead.
            .retries(0)
            .build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }

    /// Whether this is a cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Subscribes to `channel` (sharded on a cluster).
    pub(super) async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(manager) => manager.subscribe(channel).await,
            Self::Cluster(cluster) => cluster.ssubscribe(channel).await,
        }
    }

    /// The command that publishes `payload` on `channel`: `SPUBLISH` on a
    /// cluster, `PUBLISH` on one server. Either answers how many
    /// subscribers heard it.
    pub(super) fn publish(&self, channel: &str, payload: &str) -> Cmd {
        let mut cmd = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(channel).arg(payload);
        cmd
    }

    /// Runs `commands` (each with the key it routes by) and answers each
    /// one's reply in order. One pipeline on one server; on a cluster one
    /// pipeline per hash tag, all at once, each keeping its commands'
    /// order.
    pub(super) async fn run_all(
        &mut self,
        commands: Vec<(Cmd, Arc<str>)>,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let count = commands.len();
        if !self.is_cluster() {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (cmd, _) in commands {
                pipe.add_command(cmd);
            }
            return pipe.query_async(self).await;
        }
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<(Vec<usize>, Pipeline)> = Vec::new();
        for (index, (cmd, route)) in commands.into_iter().enumerate() {
            let tag = hash_tag(&route);
            let group = match group_of.get(tag) {
                Some(&found) => found,
                None => {
                    let mut pipe = redis::pipe();
                    pipe.ignore_errors();
                    groups.push((Vec::new(), pipe));
                    group_of.insert(tag.to_owned(), groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[group].0.push(index);
            groups[group].1.add_command(cmd);
        }
        let answers = join_all(groups.into_iter().map(|(indices, pipe)| {
            let mut link = self.clone();
            async move {
                let replies: RedisResult<Vec<RedisResult<Value>>> =
                    pipe.query_async(&mut link).await;
                (indices, replies)
            }
        }))
        .await;
        let mut replies: Vec<Option<RedisResult<Value>>> = (0..count).map(|_| None).collect();
        for (indices, answer) in answers {
            match answer {
                Ok(values) if values.len() == indices.len() => {
                    for (index, value) in indices.into_iter().zip(values) {
                        replies[index] = Some(value);
                    }
                }
                Ok(_) => {
                    for index in indices {
                        replies[index] = Some(Err(wrong_count()));
                    }
                }
                Err(err) => {
                    for index in indices {
                        replies[index] = Some(Err(copy_error(&err)));
                    }
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|reply| reply.unwrap_or_else(|| Err(wrong_count())))
            .collect())
    }
}

/// The same error again, for each command it failed.
pub(super) fn copy_error(err: &redis::RedisError) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(err.to_string()))
}

fn wrong_count() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(
        "Redis answered a pipeline with the wrong number of replies",
    ))
}

/// `url` asking for RESP3, which carries pushes on the command connection.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}protocol=resp3")
}

/// Whether the server at `url` runs in cluster mode.
async fn reports_cluster(url: &str, timeout: Duration) -> RedisResult<bool> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut connection)
        .await?;
    Ok(info.contains("cluster_enabled:1"))
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(cmd, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_resp3;

    #[test]
    fn urls_ask_for_resp3_unless_they_chose() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(
            with_resp3("redis://h:1/0?x=1"),
            "redis://h:1/0?x=1&protocol=resp3"
        );
        assert_eq!(with_resp3("redis://h?protocol=2"), "redis://h?protocol=2");
    }
}
