//! Two `peer-client chat` processes limited to TURN relays (coturn on
//! loopback) report the link as relayed and still exchange lines.

use e2e::{CHAT_OPEN, Process, Server, Stream, TurnServer};

fn relayed_chat(server: &Server, turn: &TurnServer, name: &str) -> Process {
    Process::start(
        &format!("chat {name}"),
        "peer-client",
        &[
            "chat",
            "--server",
            &server.url,
            "--room",
            "relay",
            "--name",
            name,
            "--bind",
            "127.0.0.1:0",
            "--relay-only",
            "--ice-server",
            &turn.url,
        ],
    )
}

#[test]
fn relay_only_chats_report_a_relayed_link_and_talk() {
    let turn = TurnServer::start();
    let server = Server::start(&[]);
    let mut ada = relayed_chat(&server, &turn, "Ada");
    ada.wait_for(Stream::Stderr, "joined room", 0);
    let mut bob = relayed_chat(&server, &turn, "Bob");
    for peer in [&ada, &bob] {
        peer.wait_for(Stream::Stderr, "(relayed)", 0);
        peer.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    }
    ada.write_line("through the relay");
    bob.wait_for(Stream::Stdout, "Ada: through the relay", 0);
    bob.write_line("and back");
    ada.wait_for(Stream::Stdout, "Bob: and back", 0);
}
