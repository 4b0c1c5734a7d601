//! The grid of cells, their runs, and the table of medians.

use std::time::Duration;

use anyhow::{Context, bail};
use e2e::{binary, pseudo_random};

use crate::Grid;
use crate::lab::{Cell, Lab};

fn cells(grid: &Grid) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for &rtt_ms in &grid.rtt_ms {
        for &loss_percent in &grid.loss {
            cells.push(Cell {
                rtt_ms,
                loss_percent,
            });
        }
    }
    for extra in grid.also.iter().filter(|extra| !extra.is_empty()) {
        let Some((rtt, loss)) = extra.split_once(':') else {
            bail!("--also takes RTT_MS:LOSS_PERCENT, not {extra:?}");
        };
        cells.push(Cell {
            rtt_ms: rtt.parse().context("round trip")?,
            loss_percent: loss.parse().context("loss")?,
        });
    }
    Ok(cells)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub(crate) fn run_grid(grid: &Grid) -> anyhow::Result<()> {
    // Fail early, before any namespace exists, if a build is missing.
    binary("peer-client");
    binary("signaling-server");
    let cells = cells(grid)?;
    let lab = Lab::new()?;
    let limit = Duration::from_secs(grid.timeout_secs);
    let file = lab.dir.join("payload.bin");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut port = 5000;
    for cell in cells {
        lab.impair(cell, grid);
        let bytes = match grid.mib {
            Some(mib) => mib * 1024 * 1024,
            None => {
                port += 1;
                let half = Duration::from_secs(grid.seconds.div_ceil(2));
                let (moved, took) = lab.tcp(0, half, port, grid, limit)?;
                let mut wanted = moved as f64 / took * grid.seconds as f64;
                if grid.share_with_tcp {
                    wanted /= 2.0;
                }
                (wanted as u64).clamp(1024 * 1024, grid.max_mib * 1024 * 1024)
            }
        };
        std::fs::write(&file, pseudo_random(bytes as usize, 11))?;
        let mb = bytes as f64 / 1e6;
        let (mut tcp, mut ours, mut reported) = (Vec::new(), Vec::new(), Vec::new());
        let mut anchors = Vec::new();
        for run in 0..grid.runs {
            port += 1;
            let (tcp_rate, result) = if grid.share_with_tcp {
                match lab.alongside_tcp(port, grid, limit, || lab.transfer(&file, run, grid, limit))
                {
                    Ok((tcp_rate, result)) => (tcp_rate, Ok(result)),
                    Err(err) => (f64::NAN, Err(err)),
                }
            } else {
                let (_, tcp_took) = lab.tcp(bytes, Duration::ZERO, port, grid, limit)?;
                (mb / tcp_took, lab.transfer(&file, run, grid, limit))
            };
            let (took, data_rate) = match result {
                Ok(result) => result,
                Err(err) => {
                    eprintln!(
                        "{} ms, {} %: the transfer failed: {err:#}",
                        cell.rtt_ms, cell.loss_percent
                    );
                    (f64::INFINITY, 0.0)
                }
            };
            let rate = mb / took;
            eprintln!(
                "{} ms, {} %, {:.1} MB, run {}: TCP {tcp_rate:.2} MB/s, transfer {rate:.2} MB/s ({data_rate:.2} MB/s after setup)",
                cell.rtt_ms,
                cell.loss_percent,
                mb,
                run + 1
            );
            if grid.share_with_tcp && data_rate > 0.0 {
                // The anchor: a second TCP flow in the transfer's place, starting as
                // late as the transfer's data did.
                let setup = Duration::from_secs_f64((took - mb / data_rate).max(0.0));
                port += 2;
                let (first, (_, second_took)) = lab.alongside_tcp(port, grid, limit, || {
                    std::thread::sleep(setup);
                    lab.tcp(bytes, Duration::ZERO, port + 1, grid, limit)
                })?;
                let second = mb / second_took;
                eprintln!(
                    "  anchor, a second TCP flow in its place (after {:.1} s): {second:.2} MB/s against the first's {first:.2} MB/s",
                    setup.as_secs_f64()
                );
                anchors.push(second / first);
            }
            tcp.push(tcp_rate);
            ours.push(rate);
            reported.push(data_rate);
        }
        let (tcp, ours, reported) = (median(&mut tcp), median(&mut ours), median(&mut reported));
        if grid.share_with_tcp {
            notes.push(format!(
                "{} ms, {} %: a second TCP flow in the transfer's place got {:.2} times the first's rate (median)",
                cell.rtt_ms,
                cell.loss_percent,
                median(&mut anchors)
            ));
        }
        rows.push(format!(
            "| {} ms | {} % | {mb:.1} MB | {tcp:.2} MB/s | {ours:.2} MB/s | {reported:.2} MB/s | {:.2} |",
            cell.rtt_ms,
            cell.loss_percent,
            ours / tcp
        ));
    }
    let mut shape = vec![
        match grid.mib {
            Some(mib) => format!("{mib} MiB per transfer"),
            None => format!("what TCP moves in about {} s per transfer", grid.seconds),
        },
        format!("median of {}", grid.runs),
        format!("TCP {}", grid.tcp_congestion_control),
    ];
    if let Some(buffer) = grid.socket_buffer {
        shape.push(format!("socket buffer {buffer} B"));
    }
    if let Some(mbit) = grid.rate_mbit {
        shape.push(format!(
            "{mbit} Mbit/s bottleneck, queue {} BDP",
            grid.queue_bdp
        ));
    }
    if let Some(mtu) = grid.mtu {
        shape.push(format!("MTU {mtu}"));
    }
    if grid.share_with_tcp {
        shape.push(
            "each transfer alongside a TCP flow; TCP's rate is while the transfer ran".into(),
        );
    }
    println!("{}", shape.join(", "));
    println!();
    println!("| round trip | loss | size | TCP | peer-client transfer | after setup | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    if !notes.is_empty() {
        println!();
    }
    for note in notes {
        println!("{note}");
    }
    Ok(())
}
