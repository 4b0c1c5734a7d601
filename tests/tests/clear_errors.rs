//! Failures a user meets at the command line get messages that say what
//! happened.

use e2e::{Process, Server, Stream};

#[test]
fn an_unreachable_server_is_reported_and_the_client_exits() {
    // A port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let url = format!("ws://{addr}/ws");
    let mut client = Process::start(
        "chat",
        "peer-client",
        &["chat", "--server", &url, "--room", "r"],
    );
    let status = client.wait_exit();
    assert!(!status.success());
    let line = client.wait_for(Stream::Stderr, "cannot reach the signaling server", 0);
    assert!(line.contains(&addr.to_string()), "{line}");
}

#[test]
fn a_full_room_is_reported_with_the_servers_reason() {
    let server = Server::start(&["--max-peers-per-room", "1"]);
    let first = Process::start(
        "first",
        "peer-client",
        &[
            "chat",
            "--server",
            &server.url,
            "--room",
            "tiny",
            "--bind",
            "127.0.0.1:0",
        ],
    );
    first.wait_for(Stream::Stderr, "joined room", 0);
    let mut second = Process::start(
        "second",
        "peer-client",
        &[
            "chat",
            "--server",
            &server.url,
            "--room",
            "tiny",
            "--bind",
            "127.0.0.1:0",
        ],
    );
    assert!(!second.wait_exit().success());
    second.wait_for(Stream::Stderr, "room \"tiny\" is full", 0);
}
