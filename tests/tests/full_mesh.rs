//! Three `peer-client chat` processes in one room form a full mesh: each
//! opens a chat channel to both others and sees both others' lines.

use e2e::{CHAT_OPEN, Server, Stream, chat};

#[test]
fn three_chats_form_a_full_mesh() {
    let server = Server::start(&[]);
    let mut peers = Vec::new();
    for name in ["Ada", "Grace", "Linus"] {
        let peer = chat(&server.url, "mesh", name);
        peer.wait_for(Stream::Stderr, "joined room", 0);
        peers.push((name, peer));
    }
    for (_, peer) in &peers {
        peer.wait_for_count(Stream::Stderr, CHAT_OPEN, 0, 2);
    }
    for (name, peer) in &mut peers {
        peer.write_line(&format!("hello from {name}"));
    }
    for (me, peer) in &peers {
        for (other, _) in &peers {
            if other != me {
                peer.wait_for(Stream::Stdout, &format!("{other}: hello from {other}"), 0);
            }
        }
    }
}
