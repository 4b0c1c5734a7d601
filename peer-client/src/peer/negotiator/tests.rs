//! The negotiation policy on a virtual clock: no engine, no sockets.

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn offer(fingerprint: &str) -> Description {
    Description {
        offer: true,
        fingerprint: Some(fingerprint.into()),
    }
}

fn answer(fingerprint: &str) -> Description {
    Description {
        offer: false,
        fingerprint: Some(fingerprint.into()),
    }
}

/// The engine's view with our offer out and nothing from the peer applied.
fn offer_out() -> Facts {
    Facts {
        pending_offer: true,
        ..Facts::default()
    }
}

/// The engine's view with the peer's description (fingerprint `fp`) applied.
fn applied(fp: &str) -> Facts {
    Facts {
        pending_offer: false,
        has_remote_description: true,
        remote_fingerprint: Some(fp.into()),
    }
}

const OFFER_AGAIN: Action = Action::SendOffer { ice_restart: false };
const RESTART: Action = Action::SendOffer { ice_restart: true };

fn gave_up(actions: &[Action]) -> Option<&str> {
    match actions {
        [Action::GiveUp(GiveUp { why, .. })] => Some(why),
        _ => None,
    }
}

#[test]
fn in_glare_the_impolite_side_ignores_the_offer_and_the_polite_side_rolls_back() {
    let now = Instant::now();
    let mut impolite = Negotiator::new(false, true);
    assert!(
        impolite
            .on_description(now, &offer("B"), &offer_out())
            .is_empty()
    );
    // Candidates of the ignored offer may be refused by the engine.
    assert_eq!(
        impolite.on_candidate(&Facts {
            has_remote_description: true,
            ..offer_out()
        }),
        CandidateStep::Add {
            refusal_expected: true
        }
    );

    let mut polite = Negotiator::new(true, true);
    assert_eq!(
        polite.on_description(now, &offer("A"), &offer_out()),
        vec![Action::Rollback, Action::Apply]
    );
    assert_eq!(
        polite.on_candidate(&applied("A")),
        CandidateStep::Add {
            refusal_expected: false
        }
    );
}

#[test]
fn the_ignored_offer_is_forgotten_once_the_impolite_side_gets_its_answer() {
    let now = Instant::now();
    let mut impolite = Negotiator::new(false, true);
    impolite.on_description(now, &offer("B"), &offer_out());
    assert_eq!(
        impolite.on_description(now, &answer("B"), &offer_out()),
        vec![Action::Apply]
    );
    assert_eq!(
        impolite.on_candidate(&applied("B")),
        CandidateStep::Add {
            refusal_expected: false
        }
    );
}

#[test]
fn candidates_wait_for_the_remote_description() {
    let negotiator = Negotiator::new(true, false);
    assert_eq!(
        negotiator.on_candidate(&Facts::default()),
        CandidateStep::Hold
    );
}

#[test]
fn only_the_impolite_side_restarts_after_an_ice_failure_and_at_most_twice() {
    let mut polite = Negotiator::new(true, false);
    assert_eq!(
        polite.on_state(LinkState::Failed),
        vec![Action::Report(LinkState::Failed)]
    );

    let mut impolite = Negotiator::new(false, true);
    impolite.on_state(LinkState::Connected);
    for _ in 0..MAX_ICE_RESTARTS {
        assert_eq!(
            impolite.on_state(LinkState::Failed),
            vec![Action::Report(LinkState::Failed), RESTART]
        );
        impolite.on_state(LinkState::Disconnected);
    }
    assert_eq!(
        impolite.on_state(LinkState::Failed),
        vec![Action::Report(LinkState::Failed)],
        "no third restart before the link connects again"
    );
    // Connected again: restarts are available again.
    impolite.on_state(LinkState::Connected);
    assert_eq!(
        impolite.on_state(LinkState::Failed),
        vec![Action::Report(LinkState::Failed), RESTART]
    );
}

const LOST: AddressChange = AddressChange {
    lost: true,
    gained: false,
};
const GAINED: AddressChange = AddressChange {
    lost: false,
    gained: true,
};

#[test]
fn a_lost_address_restarts_ice_on_either_side() {
    for polite in [true, false] {
        let mut negotiator = Negotiator::new(polite, !polite);
        negotiator.on_state(LinkState::Connected);
        assert_eq!(negotiator.on_addresses_changed(LOST), vec![RESTART]);
    }
}

#[test]
fn a_new_address_restarts_ice_only_while_the_link_is_down() {
    let mut negotiator = Negotiator::new(true, false);
    negotiator.on_state(LinkState::Connected);
    assert!(
        negotiator.on_addresses_changed(GAINED).is_empty(),
        "a working link stays on its path"
    );
    // The old address went first: the restart had only the others to offer.
    assert_eq!(negotiator.on_addresses_changed(LOST), vec![RESTART]);
    assert!(negotiator.on_state(LinkState::Connecting).is_empty());
    // The new address came after it: another restart offers it.
    assert_eq!(negotiator.on_addresses_changed(GAINED), vec![RESTART]);
    negotiator.on_state(LinkState::Connected);
    assert!(negotiator.on_addresses_changed(GAINED).is_empty());
}

#[test]
fn an_established_link_reports_connecting_only_once_the_peer_takes_part() {
    let now = Instant::now();
    let mut negotiator = Negotiator::new(true, false);
    negotiator.on_state(LinkState::Connected);
    assert!(negotiator.on_state(LinkState::Connecting).is_empty());
    assert_eq!(
        negotiator.on_state(LinkState::Disconnected),
        vec![Action::Report(LinkState::Disconnected)]
    );
    // The peer's restart offer shows it is alive.
    assert_eq!(
        negotiator.on_description(now, &offer("A"), &applied("A")),
        vec![Action::Apply, Action::Report(LinkState::Connecting)]
    );
    // The same state is not reported twice.
    assert!(negotiator.on_state(LinkState::Connecting).is_empty());
    assert_eq!(
        negotiator.on_state(LinkState::Connected),
        vec![Action::Report(LinkState::Connected)]
    );
}

#[test]
fn after_a_resume_the_side_with_an_unanswered_offer_offers_again() {
    let mut polite = Negotiator::new(true, true);
    assert_eq!(
        polite.on_signaling_resumed(&offer_out()),
        vec![Action::Rollback, RESTART]
    );
    // Both answered but not connected: the impolite side restarts ICE, the
    // polite one waits for it.
    assert!(polite.on_signaling_resumed(&applied("A")).is_empty());
    let mut impolite = Negotiator::new(false, false);
    assert_eq!(impolite.on_signaling_resumed(&applied("B")), vec![RESTART]);
    // Nothing applied yet and no offer out: nothing to redo.
    assert!(impolite.on_signaling_resumed(&Facts::default()).is_empty());
    // A connected link has lost nothing it needs.
    impolite.on_state(LinkState::Connected);
    assert!(impolite.on_signaling_resumed(&applied("B")).is_empty());
}

#[test]
fn lost_signals_are_negotiated_again_after_a_wait_that_doubles() {
    let start = Instant::now();
    let mut negotiator = Negotiator::new(true, true);
    let mut now = start;
    let mut waits = Vec::new();
    for _ in 0..5 {
        negotiator.on_signal_lost(now);
        // A second loss before the first is dealt with changes nothing.
        negotiator.on_signal_lost(now);
        let due = negotiator.next_deadline().unwrap();
        waits.push(due - now);
        assert!(
            negotiator
                .on_deadline(due - Duration::from_millis(1), &offer_out())
                .is_empty()
        );
        assert_eq!(
            negotiator.on_deadline(due, &offer_out()),
            vec![Action::Rollback, RESTART]
        );
        assert_eq!(negotiator.next_deadline(), None);
        now = due;
    }
    assert_eq!(waits, [secs(1), secs(2), secs(4), secs(8), secs(8)]);
}

#[test]
fn the_offering_side_starts_over_when_the_handshake_misses_its_deadline() {
    let start = Instant::now();
    let mut offerer = Negotiator::new(false, true);
    offerer.on_ice_connected(start);
    let due = offerer.next_deadline().unwrap();
    assert_eq!(due - start, DTLS_HANDSHAKE_DEADLINE);
    assert_eq!(
        offerer.on_deadline(due, &applied("B1")),
        vec![Action::Rebuild, OFFER_AGAIN]
    );
    // The new connection is bounded even if it never reaches ICE.
    assert_eq!(
        offerer.next_deadline().unwrap() - due,
        DTLS_HANDSHAKE_DEADLINE + DTLS_REBUILD_GRACE
    );
    // A late answer from the connection it left is ignored.
    assert!(
        offerer
            .on_description(due, &answer("B1"), &offer_out())
            .is_empty()
    );

    // The ICE-connected deadline of the second connection; then a third
    // connection; then it gives up.
    let second = due + secs(1);
    offerer.on_ice_connected(second);
    let due = offerer.next_deadline().unwrap();
    assert_eq!(
        offerer.on_deadline(due, &applied("B2")),
        vec![Action::Rebuild, OFFER_AGAIN]
    );
    let due = offerer.next_deadline().unwrap();
    let actions = offerer.on_deadline(due, &applied("B3"));
    assert_eq!(
        gave_up(&actions),
        Some("the DTLS handshake failed (it did not complete in time) on 3 connection(s)")
    );
    assert_eq!(offerer.next_deadline(), None);
}

#[test]
fn the_answering_side_waits_longer_then_gives_up() {
    let start = Instant::now();
    let mut answerer = Negotiator::new(true, false);
    answerer.on_ice_connected(start);
    let due = answerer.next_deadline().unwrap();
    assert_eq!(due - start, DTLS_HANDSHAKE_DEADLINE + DTLS_REBUILD_GRACE);
    let actions = answerer.on_deadline(due, &applied("A"));
    assert_eq!(
        actions,
        vec![Action::GiveUp(GiveUp {
            why: "the DTLS handshake failed (it did not complete in time) on 1 connection(s)"
                .into(),
            report_failed: true,
        })]
    );
}

#[test]
fn a_stopped_connection_starts_over_fails_or_waits_by_side_and_history() {
    let now = Instant::now();
    let mut offerer = Negotiator::new(false, true);
    assert_eq!(
        offerer.on_stopped(now, &applied("B")),
        vec![Action::Rebuild, OFFER_AGAIN]
    );

    let mut answerer = Negotiator::new(true, false);
    assert!(answerer.on_stopped(now, &applied("A")).is_empty());
    assert_eq!(
        answerer.next_deadline().unwrap() - now,
        DTLS_HANDSHAKE_DEADLINE + DTLS_REBUILD_GRACE,
        "it waits for the offering side to start over"
    );

    let mut established = Negotiator::new(true, false);
    established.on_state(LinkState::Connected);
    assert_eq!(
        gave_up(&established.on_stopped(now, &applied("A"))),
        Some("the connection stopped on an error")
    );
}

#[test]
fn the_answering_side_follows_a_peer_that_starts_over_at_most_twice() {
    let now = Instant::now();
    let mut answerer = Negotiator::new(true, false);
    assert_eq!(
        answerer.on_description(now, &offer("A1"), &Facts::default()),
        vec![Action::Apply]
    );
    assert_eq!(
        answerer.on_description(now, &offer("A2"), &applied("A1")),
        vec![Action::Rebuild, Action::Apply]
    );
    assert_eq!(
        answerer.on_description(now, &offer("A3"), &applied("A2")),
        vec![Action::Rebuild, Action::Apply]
    );
    assert_eq!(
        gave_up(&answerer.on_description(now, &offer("A4"), &applied("A3"))),
        Some("the peer started over more than 2 times")
    );
    // Descriptions of the connections it left are ignored.
    assert!(
        answerer
            .on_description(now, &offer("A1"), &applied("A3"))
            .is_empty()
    );
}

#[test]
fn a_new_certificate_on_an_established_link_is_refused() {
    let now = Instant::now();
    let mut negotiator = Negotiator::new(true, false);
    negotiator.on_description(now, &offer("A"), &Facts::default());
    negotiator.on_state(LinkState::Connected);
    assert!(matches!(
        negotiator
            .on_description(now, &offer("EVIL"), &applied("A"))
            .as_slice(),
        [Action::Refuse(_)]
    ));
    // A restart offer with the same certificate is fine.
    assert_eq!(
        negotiator.on_description(now, &offer("A"), &applied("A")),
        vec![Action::Apply]
    );
}

#[test]
fn a_link_that_gave_up_reports_failed_once() {
    let mut negotiator = Negotiator::new(false, true);
    negotiator.on_state(LinkState::Failed);
    assert_eq!(
        negotiator.rebuild_failed("no sockets"),
        GiveUp {
            why: "could not start a new connection: no sockets".into(),
            report_failed: false,
        }
    );
    let mut fresh = Negotiator::new(false, true);
    assert!(fresh.rebuild_failed("no sockets").report_failed);
}

/// docs/protocol.md, "When a link fails": the policy both clients follow.
const PROTOCOL_DOC: &str = include_str!("../../../../docs/protocol.md");

/// The rows of the failure table, with every `*` expanded into both values:
/// (connected before, made the first offer, polite, attempts left, ice, action).
fn failure_table() -> Vec<([bool; 5], String)> {
    let table = PROTOCOL_DOC
        .split("### When a link fails")
        .nth(1)
        .expect("docs/protocol.md has the failure table");
    let mut rows = Vec::new();
    let lines = table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    // The first two lines are the header and its rule.
    for line in lines.skip(2) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [connected, first, polite, left, failed, action] = cells[..] else {
            panic!("a row of six cells: {line}");
        };
        let mut expanded = vec![Vec::new()];
        for cell in [connected, first, polite, left] {
            let values: &[bool] = match cell {
                "yes" => &[true],
                "no" => &[false],
                "*" => &[true, false],
                other => panic!("yes, no or * in the table, not {other:?}"),
            };
            expanded = expanded
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |&value| {
                        let mut row = prefix.clone();
                        row.push(value);
                        row
                    })
                })
                .collect();
        }
        let ice = match failed {
            "ice" => true,
            "dtls" => false,
            other => panic!("ice or dtls in the table, not {other:?}"),
        };
        for row in expanded {
            rows.push(([row[0], row[1], row[2], row[3], ice], action.to_owned()));
        }
    }
    rows
}

/// What the negotiator does in the situation of one table row, in the
/// table's words.
fn action_in(
    [connected_before, first_offer, polite, attempts_left, ice]: [bool; 5],
) -> &'static str {
    let now = Instant::now();
    let mut negotiator = Negotiator::new(polite, first_offer);
    if connected_before {
        negotiator.on_state(LinkState::Connected);
    }
    if !attempts_left {
        negotiator.restarts = MAX_ICE_RESTARTS;
        negotiator.rebuilds = MAX_REBUILDS;
    }
    let actions = if ice {
        negotiator.on_state(LinkState::Failed)
    } else {
        negotiator.on_stopped(now, &applied("PEER"))
    };
    if actions.contains(&RESTART) {
        "restart-ice"
    } else if actions.contains(&Action::Rebuild) {
        "start-over"
    } else if gave_up(&actions).is_some() {
        "give-up"
    } else {
        "wait"
    }
}

#[test]
fn a_failed_link_does_what_the_protocol_table_says() {
    let rows = failure_table();
    assert_eq!(rows.len(), 32, "every situation once: {rows:?}");
    for (situation, action) in rows {
        assert_eq!(
            action_in(situation),
            action,
            "connected before, first offer, polite, attempts left, ice: {situation:?}"
        );
    }
}
