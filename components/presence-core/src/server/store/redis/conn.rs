//! The connection to Redis: one server (redis-rs' connection manager, which reconnects), or a
//! Redis Cluster (its cluster connection, which follows the cluster's topology). Every call goes
//! through [`Conn`] either way; pub/sub uses a plain client (see [`Connected::pubsub`]).

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// Answers slower than this fail (the store is then unavailable, not hanging).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to one Redis, or to a Cluster. Cheap to clone (clones share it).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What connecting gives: the connection for commands and scripts, and a client for pub/sub.
pub(super) struct Connected {
    pub conn: Conn,
    /// Pub/sub: one node. Redis Cluster propagates classic `PUBLISH` to every node, so one
    /// node's subscription hears every server's messages.
    pub pubsub: redis::Client,
}

/// Connects to `url` (with `cluster`: one or more of the Cluster's nodes, separated by commas).
pub(super) async fn connect(url: &str, cluster: bool) -> redis::RedisResult<Connected> {
    if cluster {
        let nodes: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let client = ClusterClient::builder(nodes.clone())
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(2)
            .build()?;
        let conn = client.get_async_connection().await?;
        let first = nodes.first().copied().unwrap_or_default();
        Ok(Connected {
            conn: Conn::Cluster(conn),
            pubsub: redis::Client::open(first)?,
        })
    } else {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Connected {
            conn: Conn::Single(conn),
            pubsub: client,
        })
    }
}

/// The key prefix as used: on a Cluster, a hash tag (`{presence}`), so that every key of the
/// store hashes to one slot and each change stays one atomic script there.
pub(super) fn prefix(configured: &str, cluster: bool) -> String {
    if cluster && !configured.contains('{') {
        format!("{{{configured}}}")
    } else {
        configured.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn on_a_cluster_the_prefix_is_a_hash_tag() {
        assert_eq!(super::prefix("presence", true), "{presence}");
        assert_eq!(super::prefix("app:{p}", true), "app:{p}");
        assert_eq!(super::prefix("presence", false), "presence");
    }
}
