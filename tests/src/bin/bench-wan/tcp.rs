//! The TCP flows the data channel is measured against, run inside the
//! hosts' namespaces as helpers of this program.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use e2e::pseudo_random;
use nix::sys::socket::sockopt;

/// Accepts one connection, reads it to its end and prints the count.
pub(crate) fn tcp_receive(addr: &str, mss: Option<u32>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    if let Some(mss) = mss {
        nix::sys::socket::setsockopt(&listener, sockopt::TcpMaxSeg, &mss)
            .with_context(|| format!("cannot set the MSS to {mss}"))?;
    }
    println!("listening");
    std::io::stdout().flush()?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut reported = Instant::now();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            println!("at {total}");
            std::io::stdout().flush()?;
            reported = Instant::now();
        }
    }
    println!("received {total}");
    Ok(())
}

/// Sends `bytes` (0: as much as it can for `limit`) with congestion control `cc`.
pub(crate) fn tcp_send(addr: &str, bytes: u64, cc: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    nix::sys::socket::setsockopt(&stream, sockopt::TcpCongestion, &cc.into())
        .with_context(|| format!("cannot use congestion control {cc}"))?;
    let chunk = pseudo_random(256 * 1024, 7);
    let mut left = if bytes == 0 { u64::MAX } else { bytes };
    while left > 0 && (bytes != 0 || started.elapsed() < limit) {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 16];
    while stream.read(&mut rest)? > 0 {}
    Ok(())
}

/// How often `tcp-receive` prints the bytes it has so far.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
