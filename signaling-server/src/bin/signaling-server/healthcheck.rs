//! `signaling-server healthcheck`: asks a server on this host for `GET
//! /healthz`, for the container image's HEALTHCHECK (the image holds no
//! shell, curl or wget).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};

use anyhow::{Context, bail};

use crate::args::HealthcheckArgs;

/// Checks the server `args` describe; an error says what failed.
pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let timeout = args.timeout.0;
    let addr = loopback_of(&args.listen)?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    if args.tls_cert.is_some() {
        return Ok(());
    }
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 200 ") {
        bail!("{addr} answered {status_line:?}");
    }
    Ok(())
}

/// The address to ask for a server listening on `listen`: its port on
/// loopback when it listens on every interface, else the address itself.
fn loopback_of(listen: &str) -> anyhow::Result<SocketAddr> {
    let addr = listen
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {listen}"))?
        .next()
        .with_context(|| format!("{listen} resolves to nothing"))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::args::HumanDuration;

    const TEST_TIMEOUT: Duration = Duration::from_secs(2);

    fn args(listen: String) -> HealthcheckArgs {
        HealthcheckArgs {
            listen,
            tls_cert: None,
            timeout: HumanDuration(TEST_TIMEOUT),
        }
    }

    #[test]
    fn unspecified_addresses_are_asked_on_loopback() {
        let addr = loopback_of("0.0.0.0:8080").ok();
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        let addr = loopback_of("[::]:8080").ok();
        assert_eq!(addr, Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 8080))));
        let addr = loopback_of("127.0.0.2:1").ok();
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 2], 1))));
    }

    #[test]
    fn a_port_nobody_listens_on_fails() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port());
        let Ok(port) = port else {
            panic!("no free port");
        };
        // The listener is dropped: nothing listens there now.
        assert!(run(&args(format!("127.0.0.1:{port}"))).is_err());
    }
}
