//! The client's side of RFC 6455 framing, without I/O: frames masked as a
//! client must send them, and the header of a frame a server sent. The load
//! generator speaks WebSocket with it; tests that speak raw frames build
//! theirs with it. (The server's side is the server's own `websocket.rs`.)

use std::fmt;

/// A further fragment of a message.
pub const OP_CONTINUATION: u8 = 0x0;
/// UTF-8 text.
pub const OP_TEXT: u8 = 0x1;
/// Binary data.
pub const OP_BINARY: u8 = 0x2;
/// Close.
pub const OP_CLOSE: u8 = 0x8;
/// Ping.
pub const OP_PING: u8 = 0x9;
/// Pong.
pub const OP_PONG: u8 = 0xA;

/// Appends a client frame to `out`: FIN as given, `opcode`, and the payload
/// masked with `key` (RFC 6455 asks for a fresh key per frame).
pub fn encode_client_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push((u8::from(fin) << 7) | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], key);
}

/// A client's frame masked with a fixed key, as a test sends it.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    encode_client_frame(&mut out, fin, opcode, payload, [0x12, 0x34, 0x56, 0x78]);
    out
}

/// XORs `data` with the repeating 4-byte `key`, eight bytes at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// The header of a frame a server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHeader {
    /// Last fragment of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: u8,
    /// Bytes the header takes.
    pub header_len: usize,
    /// Bytes of payload after it.
    pub payload_len: u64,
}

/// A server frame no client may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFrameError {
    /// RSV bits set without a negotiated extension.
    ReservedBits,
    /// Server frames must not be masked.
    Masked,
}

impl fmt::Display for ServerFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReservedBits => "server frame has reserved bits set",
            Self::Masked => "server frame is masked",
        })
    }
}

impl std::error::Error for ServerFrameError {}

/// Parses the header of a server frame at the start of `buf`; `Ok(None)`
/// when more bytes are needed.
pub fn parse_server_header(buf: &[u8]) -> Result<Option<ServerHeader>, ServerFrameError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(ServerFrameError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(ServerFrameError::Masked);
    }
    let (header_len, payload_len) = match b1 & 0x7f {
        126 => match rest.get(..2) {
            Some(bytes) => (4, u64::from(u16::from_be_bytes([bytes[0], bytes[1]]))),
            None => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (10, u64::from_be_bytes(be))
            }
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    Ok(Some(ServerHeader {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        header_len,
        payload_len,
    }))
}

/// A client frame's FIN bit, opcode and unmasked payload, as a server reads
/// them; `None` if it is not one whole masked frame.
pub fn decode_client_frame(frame: &[u8]) -> Option<(bool, u8, Vec<u8>)> {
    let [b0, b1, rest @ ..] = frame else {
        return None;
    };
    if b1 & 0x80 == 0 {
        return None;
    }
    let (skip, len) = match b1 & 0x7f {
        126 => (
            2,
            usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
        ),
        127 => (
            8,
            usize::try_from(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)).ok()?,
        ),
        short => (0, usize::from(short)),
    };
    let key = rest.get(skip..skip + 4)?;
    let payload = rest.get(skip + 4..skip + 4 + len)?;
    let unmasked = payload
        .iter()
        .enumerate()
        .map(|(i, byte)| byte ^ key[i % 4])
        .collect();
    Some((b0 & 0x80 != 0, b0 & 0x0f, unmasked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_of_every_length_form_round_trip() {
        for len in [0usize, 1, 7, 125, 126, 300, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_client_frame(&mut out, true, OP_TEXT, &payload, [9, 8, 7, 6]);
            assert_eq!(
                decode_client_frame(&out),
                Some((true, OP_TEXT, payload)),
                "length {len}"
            );
        }
        let fragment = client_frame(false, OP_BINARY, b"part");
        assert_eq!(
            decode_client_frame(&fragment),
            Some((false, OP_BINARY, b"part".to_vec()))
        );
    }

    #[test]
    fn server_headers_are_read_and_masked_ones_refused() {
        assert_eq!(parse_server_header(&[0x81]), Ok(None));
        assert_eq!(
            parse_server_header(&[0x81, 5, b'h']),
            Ok(Some(ServerHeader {
                fin: true,
                opcode: OP_TEXT,
                header_len: 2,
                payload_len: 5
            }))
        );
        assert_eq!(parse_server_header(&[0x82, 126, 0x01]), Ok(None));
        assert_eq!(
            parse_server_header(&[0x02, 126, 0x01, 0x2c])
                .map(|h| h.map(|h| (h.fin, h.payload_len))),
            Ok(Some((false, 300)))
        );
        assert_eq!(
            parse_server_header(&[0x81, 0x81, 0, 0, 0, 0]),
            Err(ServerFrameError::Masked)
        );
        assert_eq!(
            parse_server_header(&[0xC1, 0]),
            Err(ServerFrameError::ReservedBits)
        );
    }
}
