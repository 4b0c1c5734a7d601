//! Client messages out of WebSocket frames, without I/O: frames are parsed
//! from the bytes read so far, unmasked in place, fragmented messages put
//! together, and the size caps applied. A message over the limit is skipped
//! unread (and reported once); one over twice the limit ends the stream,
//! since reading it is not worth the bandwidth. The connection feeds it
//! bytes and handles what comes out.

use std::ops::Range;

use crate::websocket::{self, FrameError, Opcode};

/// What the next frames of the stream amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A ping, pong or close frame, unmasked.
    Control {
        /// Which of the three.
        opcode: Opcode,
        /// Its payload.
        payload: &'a [u8],
    },
    /// A whole text or binary message, unmasked.
    Message {
        /// Text or binary.
        opcode: Opcode,
        /// Its bytes.
        payload: Payload<'a>,
    },
    /// A message over the limit of `max` bytes (`total` so far): its bytes
    /// are skipped. Reported once per message.
    Oversized {
        /// The message's size as far as its frame headers tell.
        total: u64,
        /// The limit.
        max: usize,
    },
}

/// A message's bytes: in the read buffer (one frame), or put together from
/// fragments.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A message of one frame.
    Frame(&'a [u8]),
    /// A fragmented message, put together.
    Assembled(Vec<u8>),
}

impl Payload<'_> {
    /// The message's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Frame(bytes) => bytes,
            Self::Assembled(bytes) => bytes,
        }
    }
}

/// The next step of reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Something to handle.
    Event(Event<'a>),
    /// The rest of the buffer is an incomplete frame; `frame_len`, when
    /// known, is how many bytes the whole frame takes (make room for it).
    NeedMore {
        /// Bytes of the incomplete frame, header included.
        frame_len: Option<usize>,
    },
}

/// Why the stream cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The client broke RFC 6455.
    #[error(transparent)]
    Protocol(#[from] FrameError),
    /// A message over the hard cap (twice the limit).
    #[error("a message over {0} bytes")]
    TooLarge(usize),
}

/// What [`MessageReader::advance`] found, by position in the buffer.
enum Found {
    Control(Opcode, Range<usize>),
    Frame(Opcode, Range<usize>),
    Assembled(Opcode, Vec<u8>),
    Oversized(u64),
    NeedMore(Option<usize>),
}

/// A fragmented message being put together.
#[derive(Debug)]
struct Partial {
    opcode: Opcode,
    data: Vec<u8>,
    /// Over the size limit: its fragments are skipped.
    refused: bool,
}

/// The reading state of one connection.
#[derive(Debug)]
pub struct MessageReader {
    max: usize,
    message: Option<Partial>,
    /// Payload bytes of an oversized frame still to be skipped.
    skip: u64,
}

impl MessageReader {
    /// A reader for messages of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            message: None,
            skip: 0,
        }
    }

    /// The next step from `buf[*pos..]`, advancing `*pos` past what it used.
    /// Unmasks payloads in place.
    pub fn next<'a>(&mut self, buf: &'a mut [u8], pos: &mut usize) -> Result<Step<'a>, ReadError> {
        Ok(match self.advance(buf, pos)? {
            Found::Control(opcode, range) => Step::Event(Event::Control {
                opcode,
                payload: &buf[range],
            }),
            Found::Frame(opcode, range) => Step::Event(Event::Message {
                opcode,
                payload: Payload::Frame(&buf[range]),
            }),
            Found::Assembled(opcode, data) => Step::Event(Event::Message {
                opcode,
                payload: Payload::Assembled(data),
            }),
            Found::Oversized(total) => Step::Event(Event::Oversized {
                total,
                max: self.max,
            }),
            Found::NeedMore(frame_len) => Step::NeedMore { frame_len },
        })
    }

    /// Reads frames until one gives something to hand out.
    fn advance(&mut self, buf: &mut [u8], pos: &mut usize) -> Result<Found, ReadError> {
        loop {
            if self.skip > 0 {
                let available = (buf.len() - *pos) as u64;
                let skipped = self.skip.min(available);
                *pos += skipped as usize;
                self.skip -= skipped;
                if self.skip > 0 {
                    return Ok(Found::NeedMore(None));
                }
            }
            let Some(header) = websocket::parse_header(&buf[*pos..])? else {
                return Ok(Found::NeedMore(None));
            };
            match (header.opcode, &self.message) {
                (Opcode::Text | Opcode::Binary, Some(_)) => {
                    return Err(FrameError::Interleaved.into());
                }
                (Opcode::Continuation, None) => {
                    return Err(FrameError::StrayContinuation.into());
                }
                _ => {}
            }
            if !header.opcode.is_control() {
                let so_far = self.message.as_ref().map_or(0, |m| m.data.len() as u64);
                let total = so_far + header.len;
                let hard_cap = self.max.saturating_mul(2);
                if total > hard_cap as u64 {
                    return Err(ReadError::TooLarge(hard_cap));
                }
                if total > self.max as u64 {
                    *pos += header.header_len;
                    self.skip = header.len;
                    if self.refuse(header.opcode, header.fin) {
                        return Ok(Found::Oversized(total));
                    }
                    continue;
                }
            }
            let frame_len = header.header_len + header.len as usize;
            if buf.len() - *pos < frame_len {
                return Ok(Found::NeedMore(Some(frame_len)));
            }
            let range = *pos + header.header_len..*pos + frame_len;
            *pos += frame_len;
            websocket::unmask(&mut buf[range.clone()], header.mask, 0);
            match header.opcode {
                Opcode::Ping | Opcode::Pong | Opcode::Close => {
                    return Ok(Found::Control(header.opcode, range));
                }
                Opcode::Text | Opcode::Binary if header.fin => {
                    return Ok(Found::Frame(header.opcode, range));
                }
                Opcode::Text | Opcode::Binary => {
                    self.message = Some(Partial {
                        opcode: header.opcode,
                        data: buf[range].to_vec(),
                        refused: false,
                    });
                }
                Opcode::Continuation => {
                    let Some(partial) = self.message.as_mut() else {
                        return Err(FrameError::StrayContinuation.into());
                    };
                    if !partial.refused {
                        partial.data.extend_from_slice(&buf[range]);
                    }
                    if header.fin
                        && let Some(partial) = self.message.take()
                        && !partial.refused
                    {
                        return Ok(Found::Assembled(partial.opcode, partial.data));
                    }
                }
            }
        }
    }

    /// Marks the message of an oversized frame refused; whether this is the
    /// first refusal of that message.
    fn refuse(&mut self, opcode: Opcode, fin: bool) -> bool {
        let already = match (&mut self.message, opcode) {
            (Some(partial), Opcode::Continuation) => {
                let already = partial.refused;
                partial.refused = true;
                partial.data = Vec::new();
                already
            }
            _ => false,
        };
        if opcode != Opcode::Continuation && !fin {
            self.message = Some(Partial {
                opcode,
                data: Vec::new(),
                refused: true,
            });
        }
        if fin {
            self.message = None;
        }
        !already
    }
}

#[cfg(test)]
mod tests {
    use test_support::client_frame as frame;

    use super::*;

    /// Every event in `bytes`, as owned values, until more bytes are needed.
    fn events(reader: &mut MessageReader, bytes: &mut [u8]) -> Result<Vec<String>, ReadError> {
        let mut pos = 0;
        let mut seen = Vec::new();
        loop {
            match reader.next(bytes, &mut pos)? {
                Step::NeedMore { .. } => return Ok(seen),
                Step::Event(Event::Control { opcode, payload }) => {
                    seen.push(format!("{opcode:?} {}", String::from_utf8_lossy(payload)));
                }
                Step::Event(Event::Message { opcode, payload }) => {
                    seen.push(format!(
                        "{opcode:?} {}",
                        String::from_utf8_lossy(payload.bytes())
                    ));
                }
                Step::Event(Event::Oversized { total, max }) => {
                    seen.push(format!("oversized {total}/{max}"));
                }
            }
        }
    }

    #[test]
    fn frames_and_fragments_become_messages() {
        let mut reader = MessageReader::new(100);
        let mut bytes = frame(true, 0x1, b"hello");
        bytes.extend(frame(false, 0x1, b"frag"));
        bytes.extend(frame(true, 0x9, b"ping"));
        bytes.extend(frame(true, 0x0, b"mented"));
        assert_eq!(
            events(&mut reader, &mut bytes),
            Ok(vec![
                "Text hello".into(),
                "Ping ping".into(),
                "Text fragmented".into()
            ])
        );
    }

    #[test]
    fn an_incomplete_frame_asks_for_its_length() {
        let mut reader = MessageReader::new(100);
        let mut bytes = frame(true, 0x1, b"hello");
        bytes.truncate(8);
        let mut pos = 0;
        assert_eq!(
            reader.next(&mut bytes, &mut pos),
            Ok(Step::NeedMore {
                frame_len: Some(11)
            })
        );
        assert_eq!(pos, 0);
    }

    #[test]
    fn an_oversized_message_is_reported_once_and_skipped() {
        let mut reader = MessageReader::new(10);
        let mut bytes = frame(false, 0x1, b"0123456");
        bytes.extend(frame(false, 0x0, b"789abc"));
        bytes.extend(frame(true, 0x0, b"def"));
        bytes.extend(frame(true, 0x1, b"next"));
        assert_eq!(
            events(&mut reader, &mut bytes),
            Ok(vec!["oversized 13/10".into(), "Text next".into()])
        );
    }

    #[test]
    fn skipping_spans_reads() {
        let mut reader = MessageReader::new(10);
        let whole = frame(true, 0x1, b"0123456789abcdef");
        let mut first = whole[..10].to_vec();
        assert_eq!(
            events(&mut reader, &mut first),
            Ok(vec!["oversized 16/10".into()])
        );
        let mut rest = whole[10..].to_vec();
        rest.extend(frame(true, 0x1, b"ok"));
        assert_eq!(events(&mut reader, &mut rest), Ok(vec!["Text ok".into()]));
    }

    #[test]
    fn protocol_errors_and_the_hard_cap_end_the_stream() {
        let mut bytes = frame(true, 0x0, b"stray");
        assert_eq!(
            events(&mut MessageReader::new(10), &mut bytes),
            Err(ReadError::Protocol(FrameError::StrayContinuation))
        );
        let mut bytes = frame(false, 0x1, b"a");
        bytes.extend(frame(true, 0x1, b"b"));
        assert_eq!(
            events(&mut MessageReader::new(10), &mut bytes),
            Err(ReadError::Protocol(FrameError::Interleaved))
        );
        let mut bytes = frame(true, 0x1, &[b'x'; 21]);
        assert_eq!(
            events(&mut MessageReader::new(10), &mut bytes),
            Err(ReadError::TooLarge(20))
        );
    }
}
