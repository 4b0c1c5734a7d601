//! Two `peer-client chat` processes exchange lines both ways through their
//! data channel; then the signaling server process is killed and they keep
//! exchanging lines both ways.

use e2e::{CHAT_OPEN, Server, Stream, chat};

#[test]
fn two_chats_keep_talking_after_the_server_is_killed() {
    let mut server = Server::start(&[]);
    let mut ada = chat(&server.url, "outlive", "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut linus = chat(&server.url, "outlive", "Linus");
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    linus.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    linus.wait_for(Stream::Stderr, "(direct)", 0);

    ada.write_line("hello from Ada");
    linus.wait_for(Stream::Stdout, "Ada: hello from Ada", 0);
    linus.write_line("hi Ada, ünïcödé ✓");
    ada.wait_for(Stream::Stdout, "Linus: hi Ada, ünïcödé ✓", 0);

    server.process.kill();
    ada.wait_for(Stream::Stderr, "lost the signaling server", 0);
    linus.wait_for(Stream::Stderr, "lost the signaling server", 0);

    let (a, l) = (ada.cursor(), linus.cursor());
    ada.write_line("still there?");
    linus.wait_for(Stream::Stdout, "Ada: still there?", l);
    linus.write_line("yes, peer to peer");
    ada.wait_for(Stream::Stdout, "Linus: yes, peer to peer", a);
    for i in 0..5 {
        ada.write_line(&format!("line {i}"));
    }
    linus.wait_for(Stream::Stdout, "Ada: line 4", l);
    let received = linus.wait_for_count(Stream::Stdout, "Ada: line ", l, 5);
    assert_eq!(
        received,
        (0..5).map(|i| format!("Ada: line {i}")).collect::<Vec<_>>(),
        "in order"
    );
}

#[test]
fn control_characters_from_a_peer_do_not_reach_the_terminal() {
    let server = Server::start(&[]);
    let mut ada = chat(&server.url, "escape", "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let bob = chat(&server.url, "escape", "Bob");
    ada.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    bob.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    // A line cannot carry a newline, but it can carry an escape sequence.
    ada.write_line("red \u{1b}[31m text");
    let line = bob.wait_for(Stream::Stdout, "Ada: red", 0);
    assert!(!line.contains('\u{1b}'), "{line:?}");
}
