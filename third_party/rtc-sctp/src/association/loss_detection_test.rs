use super::*;
use crate::chunk::chunk_selective_ack::GapAckBlock;

const RTT: Duration = Duration::from_millis(100);

/// An established association that sent `count` 1 KiB chunks (TSNs 100 onwards) at `now`.
fn sent(count: u32, now: Instant) -> Result<Association> {
    let mut a = timed_test_association();
    a.my_next_tsn = 100;
    a.cumulative_tsn_ack_point = 99;
    a.advanced_peer_tsn_ack_point = 99;
    a.cwnd = 64 * a.mtu;
    a.ssthresh = a.cwnd;
    a.rwnd = 1 << 20;
    a.open_stream(1, PayloadProtocolIdentifier::Binary)?;
    write(&mut a, count, now)?;
    Ok(a)
}

/// Writes and sends `count` more 1 KiB chunks at `now`.
fn write(a: &mut Association, count: u32, now: Instant) -> Result<()> {
    let ppi = PayloadProtocolIdentifier::Binary;
    let mut stream = a.stream(1)?;
    for _ in 0..count {
        stream.write_sctp(now, &Bytes::from(vec![1; 1024]), ppi)?;
    }
    assert_eq!(count as usize, data_chunks(&a.gather_outbound(now).0));
    Ok(())
}

/// A SACK of everything up to `cumulative` and of the TSNs in `blocks` (inclusive ranges).
fn sack(cumulative: u32, blocks: &[(u32, u32)]) -> ChunkSelectiveAck {
    ChunkSelectiveAck {
        cumulative_tsn_ack: cumulative,
        advertised_receiver_window_credit: 1 << 20,
        gap_ack_blocks: blocks
            .iter()
            .map(|&(from, to)| GapAckBlock {
                start: (from - cumulative) as u16,
                end: (to - cumulative) as u16,
            })
            .collect(),
        ..Default::default()
    }
}

fn tsns(packets: &[Bytes]) -> Vec<u32> {
    transmitted_data(packets).iter().map(|c| c.tsn).collect()
}

#[test]
fn every_loss_of_a_window_is_retransmitted_at_once() -> Result<()> {
    let start = Instant::now();
    let mut a = sent(10, start)?;
    // The next flight, a few milliseconds later, is acknowledged around three holes.
    let later = start + Duration::from_millis(5);
    write(&mut a, 10, later)?;
    let blocks = [(101, 101), (103, 104), (106, 119)];
    let at = later + RTT;
    a.handle_sack(&sack(99, &blocks), at)?;
    // A round trip and a reordering window after they were sent, the holes are lost.
    let at = at + RTT / 4;
    a.handle_sack(&sack(99, &blocks), at)?;
    // (Whether the window is cut too is for the loss signal; with no queue measured it is not.)
    assert_eq!(vec![100, 102, 105], tsns(&a.gather_outbound(at).0));
    Ok(())
}

#[test]
fn a_lost_retransmission_is_sent_again_without_waiting_for_the_timer() -> Result<()> {
    let start = Instant::now();
    let mut a = sent(10, start)?;
    let at = start + RTT;
    // An RTT sample first, then the ones sent after TSN 102 arrive without it.
    a.handle_sack(&sack(101, &[]), at)?;
    write(&mut a, 4, at + Duration::from_millis(30))?;
    let at = at + Duration::from_millis(30) + RTT;
    a.handle_sack(&sack(101, &[(103, 113)]), at)?;
    assert_eq!(vec![102], tsns(&a.gather_outbound(at).0));
    let cwnd = a.cwnd;

    // The retransmission is lost too; data sent after it is acknowledged.
    write(&mut a, 4, at + Duration::from_millis(30))?;
    let at = at + Duration::from_millis(30) + RTT;
    a.handle_sack(&sack(101, &[(103, 117)]), at)?;
    assert_eq!(vec![102], tsns(&a.gather_outbound(at).0));
    assert_eq!(cwnd, a.cwnd, "one window reduction per recovery");
    assert_eq!(3, a.inflight_queue.get(102).map_or(0, |c| c.nsent));
    Ok(())
}

#[test]
fn reordering_within_a_quarter_rtt_is_not_loss() -> Result<()> {
    let start = Instant::now();
    let mut a = sent(2, start)?;
    a.handle_sack(&sack(101, &[]), start + RTT)?;
    // Chunk 102 and, 10 ms later (a tenth of the RTT), chunk 103; 103 arrives first.
    let first = start + RTT;
    write(&mut a, 1, first)?;
    write(&mut a, 1, first + Duration::from_millis(10))?;
    let at = first + Duration::from_millis(10) + RTT;
    a.handle_sack(&sack(101, &[(103, 103)]), at)?;
    assert!(!a.in_fast_recovery);
    assert!(tsns(&a.gather_outbound(at).0).is_empty());
    Ok(())
}

#[test]
fn an_early_acknowledgement_of_a_retransmitted_chunk_does_not_count() -> Result<()> {
    let start = Instant::now();
    let mut a = sent(4, start)?;
    a.handle_sack(&sack(100, &[]), start + RTT)?;
    // Chunk 101 is retransmitted by the timer; the original arrives just after.
    let t3 = start + RTT + Duration::from_millis(300);
    a.handle_timeout(t3);
    let _ = a.gather_outbound(t3);
    let late = t3 + Duration::from_millis(1);
    a.handle_sack(&sack(100, &[(101, 101)]), late)?;
    // That acknowledgement is no sign that chunks 102 and 103, sent with the original, are lost.
    assert!(a.lost_tsns.is_empty());
    Ok(())
}
