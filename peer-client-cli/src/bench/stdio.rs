//! The two-process bench: the receiving peer is a child process of the same
//! binary (`bench --receiver-over-stdio`). The two exchange one line per
//! message: `signal <json>` both ways (the signal as the signaling server
//! would carry it), and from the child `open` once its channel is open and
//! `received` once every byte arrived. The child stays connected until its
//! stdin closes.

use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context, bail};
use peer_client::{DirectLink, DirectSignal, DirectSignals};
use tokio::io::BufReader;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{BenchArgs, ordered_ids, receive, side, wait_open};

/// Lines the child may have queued for its stdout.
const LINE_QUEUE: usize = 256;
/// Longest line either side reads (a description with many candidates
/// stays far below it).
const MAX_LINE_BYTES: u64 = 256 * 1024;

/// What the child reports besides its signals.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Open,
    Received,
}

/// A started child that does not exchange signals yet.
pub(super) struct SpawnedChild(Child);

/// The receiving peer in a child process, with signals flowing both ways.
pub(super) struct ChildPeer {
    /// Killed when the bench ends (it would end by itself once its stdin closes).
    _child: Child,
    progress: mpsc::Receiver<Progress>,
}

impl SpawnedChild {
    /// Starts `peer-client bench --receiver-over-stdio` with the same sizes.
    pub(super) fn start(args: &BenchArgs) -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("finding this program to run it again")?;
        let child = Command::new(program)
            .args([
                "bench",
                "--receiver-over-stdio",
                "--mib",
                &args.mib.to_string(),
                "--socket-buffer",
                &args.socket_buffer.to_string(),
                "--send-buffer",
                &args.send_buffer.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the receiving bench process")?;
        Ok(Self(child))
    }

    /// Carries `signals` of the local peer to the child, noting when the
    /// first one left, and the child's signals to `link`.
    pub(super) fn relay(
        mut self,
        mut signals: DirectSignals,
        link: Arc<DirectLink>,
        first: Arc<OnceLock<Instant>>,
    ) -> anyhow::Result<ChildPeer> {
        let (Some(mut stdin), Some(stdout)) = (self.0.stdin.take(), self.0.stdout.take()) else {
            bail!("the receiving bench process has no pipes");
        };
        tokio::spawn(async move {
            while let Some(signal) = signals.recv().await {
                first.get_or_init(Instant::now);
                if write_line(&mut stdin, &signal_line(&signal)).await.is_err() {
                    break;
                }
            }
        });
        let (progress_tx, progress) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout);
            while let Ok(Some(line)) = read_line(&mut stdout).await {
                let report = match line.as_str() {
                    "open" => Progress::Open,
                    "received" => Progress::Received,
                    _ => {
                        deliver(&link, &line);
                        continue;
                    }
                };
                if progress_tx.send(report).await.is_err() {
                    break;
                }
            }
        });
        Ok(ChildPeer {
            _child: self.0,
            progress,
        })
    }
}

impl ChildPeer {
    /// Waits for the child's channel to open.
    pub(super) async fn wait_open(&mut self) -> anyhow::Result<()> {
        self.expect(Progress::Open).await
    }

    /// Waits until the child received every byte.
    pub(super) async fn wait_received(&mut self) -> anyhow::Result<()> {
        self.expect(Progress::Received).await
    }

    async fn expect(&mut self, wanted: Progress) -> anyhow::Result<()> {
        match self.progress.recv().await {
            Some(got) if got == wanted => Ok(()),
            Some(got) => bail!("the receiving process reported {got:?} before {wanted:?}"),
            None => bail!("the receiving process ended early (its errors are above)"),
        }
    }
}

/// The child's side: answers the parent's offer, reports the open channel
/// and the received bytes, and stays connected until stdin closes.
pub(super) async fn serve(args: &BenchArgs) -> anyhow::Result<()> {
    // The answering side gets the larger id (polite), as in one process.
    let (remote, local) = ordered_ids();
    let (mut me, mut signals) = side(&args.options(), local, remote, false).await?;
    let (lines, mut to_write) = mpsc::channel::<String>(LINE_QUEUE);
    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = to_write.recv().await {
            if write_line(&mut stdout, &line).await.is_err() {
                break;
            }
        }
    });
    let signal_lines = lines.clone();
    tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            if signal_lines.send(signal_line(&signal)).await.is_err() {
                break;
            }
        }
    });
    let link = Arc::clone(&me.link);
    let mut input = tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin());
        while let Some(line) = read_line(&mut stdin).await? {
            deliver(&link, &line);
        }
        anyhow::Ok(())
    });

    let measured = async {
        wait_open(&mut me.events).await?;
        lines.send("open".to_owned()).await?;
        receive(&mut me.events, args.total_bytes()).await?;
        lines.send("received".to_owned()).await?;
        anyhow::Ok(())
    };
    tokio::select! {
        result = measured => result?,
        _ = &mut input => bail!("the sending bench process went away"),
    }
    input.await.context("reading stdin")?
}

fn signal_line(signal: &DirectSignal) -> String {
    format!("signal {}", signal.to_json())
}

/// Hands a `signal` line to `link`; anything else is a bug of the other
/// process, logged and skipped.
fn deliver(link: &DirectLink, line: &str) {
    let parsed = line
        .strip_prefix("signal ")
        .context("not a signal line")
        .and_then(|json| Ok(DirectSignal::from_json(json)?));
    match parsed {
        Ok(signal) => link.deliver(signal),
        Err(err) => tracing::warn!(%err, "skipped a line from the other bench process"),
    }
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes()).await?;
    out.write_all(b"\n").await?;
    out.flush().await
}

/// The next line without its newline; `None` at the end of the stream.
async fn read_line(input: &mut (impl AsyncBufRead + Unpin)) -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    let read = input.take(MAX_LINE_BYTES).read_line(&mut line).await?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && read as u64 == MAX_LINE_BYTES {
        bail!("a line from the other bench process is over {MAX_LINE_BYTES} bytes");
    }
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    Ok(Some(line))
}
