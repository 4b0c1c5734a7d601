//! `peer-client echo` sends every text message back to its sender unchanged.

use e2e::{CHAT_OPEN, Process, Server, Stream, chat};

#[test]
fn the_echo_bot_sends_messages_back() {
    let server = Server::start(&[]);
    let bot = Process::start(
        "echo",
        "peer-client",
        &[
            "echo",
            "--server",
            &server.url,
            "--room",
            "echo",
            "--bind",
            "127.0.0.1:0",
        ],
    );
    bot.wait_for(Stream::Stderr, "echo bot in room", 0);
    let mut user = chat(&server.url, "echo", "Ada");
    user.wait_for(Stream::Stderr, CHAT_OPEN, 0);
    for text in [
        "ping 1",
        "second: ünïcödé ✓ 🚀",
        "{\"looks\":\"like json\"}",
    ] {
        let after = user.cursor();
        user.write_line(text);
        // The echo is our own message, so it carries our own name.
        user.wait_for(Stream::Stdout, &format!("Ada: {text}"), after);
    }
}
