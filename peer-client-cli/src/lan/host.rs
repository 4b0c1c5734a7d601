//! The sender's own signaling server, on this machine's addresses, and its
//! announcement on the local network.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceInfo};
use signaling_server::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{SERVICE_TYPE, full_name, instance_name};

/// Longest wait for the server to stop, and for the announcement to be
/// withdrawn, when the send ends.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running signaling server for this send, announced once a code is chosen.
pub(crate) struct LanHost {
    port: u16,
    /// This machine's IPv4 addresses other machines may reach.
    addresses: Vec<Ipv4Addr>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    mdns: ServiceDaemon,
    announced: Option<String>,
}

impl LanHost {
    /// Starts the signaling server on every address of this machine, on a
    /// free port, with its web client.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let config = Config {
            listen: "0.0.0.0:0".into(),
            drain_delay: Duration::ZERO,
            shutdown_timeout: STOP_WAIT,
            ..Config::default()
        };
        let server = Server::bind(config)
            .await
            .context("starting the signaling server of this send")?;
        let port = server.local_addr().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            if let Err(err) = server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
            {
                tracing::warn!(%err, "the signaling server of this send stopped");
            }
        });
        let mdns = ServiceDaemon::new().context("starting mDNS to announce this send")?;
        Ok(Self {
            port,
            addresses: lan_addresses(),
            stop: Some(stop),
            server,
            mdns,
            announced: None,
        })
    }

    /// Where this program's own session connects.
    pub(crate) fn local_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Where other machines of the network reach the server (the first LAN
    /// address), if this machine has one.
    pub(crate) fn lan_url(&self) -> Option<String> {
        let address = self.addresses.first()?;
        Some(format!("ws://{address}:{}/ws", self.port))
    }

    /// Announces the server under the code number `nameplate` (replacing an
    /// earlier announcement).
    pub(crate) fn announce(&mut self, nameplate: &str) -> anyhow::Result<()> {
        self.withdraw();
        // A random host name: the machine's own name is none of the network's business.
        let host_name = format!("peer-client-{:08x}.local.", rand::random::<u32>());
        let addresses: Vec<IpAddr> = self.addresses.iter().copied().map(IpAddr::V4).collect();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance_name(nameplate),
            &host_name,
            &addresses[..],
            self.port,
            None::<std::collections::HashMap<String, String>>,
        )
        .context("describing this send for mDNS")?;
        self.mdns
            .register(info)
            .context("announcing this send on the local network")?;
        self.announced = Some(full_name(nameplate));
        Ok(())
    }

    fn withdraw(&mut self) {
        if let Some(name) = self.announced.take()
            && let Ok(done) = self.mdns.unregister(&name)
        {
            // Goodbye packets tell receivers at once that this sender is gone.
            let _ = done.recv_timeout(STOP_WAIT);
        }
    }

    /// Withdraws the announcement and stops the server.
    pub(crate) async fn stop(mut self) {
        tokio::task::block_in_place(|| self.withdraw());
        let _ = self.mdns.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(STOP_WAIT * 2, &mut self.server).await;
    }
}

/// This machine's IPv4 addresses other machines may reach: not loopback,
/// not link-local.
fn lan_addresses() -> Vec<Ipv4Addr> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|interface| match interface.ip() {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() => Some(v4),
            _ => None,
        })
        .collect()
}
