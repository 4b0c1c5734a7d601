use super::*;

/// An established association with `count` 1 KiB reliable messages sent and none acknowledged.
fn unacknowledged(count: u32, now: Instant) -> Result<Association> {
    let mut a = timed_test_association();
    a.my_next_tsn = 100;
    a.cumulative_tsn_ack_point = 99;
    a.advanced_peer_tsn_ack_point = 99;
    a.cwnd = count * a.mtu;
    a.rwnd = a.cwnd;
    let ppi = PayloadProtocolIdentifier::Binary;
    let mut stream = a.open_stream(1, ppi)?;
    for _ in 0..count {
        stream.write_sctp(now, &Bytes::from(vec![1; 1024]), ppi)?;
    }
    assert_eq!(count as usize, data_chunks(&a.gather_outbound(now).0));
    Ok(a)
}

#[test]
fn t3_rtx_keeps_retransmitting_however_long_nothing_is_acknowledged() -> Result<()> {
    let mut now = Instant::now();
    let mut a = unacknowledged(4, now)?;
    // Far past the old limit of 5 retransmissions; the association must neither go quiet
    // nor drop its timer while data is outstanding.
    for expiry in 1..=12 {
        now = a
            .timers
            .get(Timer::T3RTX)
            .unwrap_or_else(|| panic!("T3-rtx not armed before expiry {expiry}"));
        a.handle_timeout(now);
        let sent = transmitted_data(&a.gather_outbound(now).0);
        assert_eq!(
            Some(100),
            sent.first().map(|c| c.tsn),
            "expiry {expiry} retransmitted nothing"
        );
        assert!(
            a.timers.get(Timer::T3RTX).is_some(),
            "T3-rtx disarmed after expiry {expiry}"
        );
    }
    Ok(())
}

#[test]
fn t3_rtx_ends_fast_recovery_so_slow_start_can_grow_the_window() -> Result<()> {
    let now = Instant::now();
    let mut a = unacknowledged(8, now)?;
    // A fast retransmit began recovery; its exit point is the last TSN sent.
    a.in_fast_recovery = true;
    a.fast_recover_exit_point = 107;
    let at = a.timers.get(Timer::T3RTX).unwrap_or(now);
    a.handle_timeout(at);
    assert!(!a.in_fast_recovery);
    assert_eq!(a.mtu, a.cwnd);

    // More data waits behind the window, so cwnd is fully used when the retransmission is acked.
    let ppi = PayloadProtocolIdentifier::Binary;
    let mut stream = a.stream(1)?;
    stream.write_sctp(at, &Bytes::from(vec![2; 1024]), ppi)?;
    let _ = a.gather_outbound(at);
    let cwnd = a.cwnd;
    a.on_cumulative_tsn_ack_point_advanced(1024, at);
    assert!(
        a.cwnd > cwnd,
        "slow start did not grow cwnd ({} -> {})",
        cwnd,
        a.cwnd
    );
    Ok(())
}

#[test]
fn slow_start_after_t3_rtx_grows_while_only_retransmissions_wait() -> Result<()> {
    let now = Instant::now();
    // Everything the application wrote is in flight: nothing new waits behind the window.
    let mut a = unacknowledged(16, now)?;
    assert!(a.pending_queue.is_empty());
    let at = a.timers.get(Timer::T3RTX).unwrap_or(now);
    a.handle_timeout(at);
    assert_eq!(a.mtu, a.cwnd);

    // The first retransmission goes out alone; its acknowledgement must open the window.
    let sent = transmitted_data(&a.gather_outbound(at).0);
    assert_eq!(vec![100], sent.iter().map(|c| c.tsn).collect::<Vec<_>>());
    assert!(a.t3_retransmit_pending);
    let cwnd = a.cwnd;
    a.on_cumulative_tsn_ack_point_advanced(1024, at);
    assert!(
        a.cwnd > cwnd,
        "cwnd stayed at {} while 15 chunks waited",
        a.cwnd
    );
    Ok(())
}
