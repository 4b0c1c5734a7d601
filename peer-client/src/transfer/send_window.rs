//! The sender's bound on file data a receiver has not yet taken
//! (docs/transfer.md, "Receive window"). A browser cannot slow down what its
//! data channel delivers, so a page whose files go to a slower place (a
//! download, a disk) announces a window in its `accept` and reports what it
//! wrote with `consumed`; the sender keeps at most that much unconsumed.
//! A receiver without a window (`peer-client`, whose channel reads slow down
//! with its writes) is sent to as fast as the channel takes the data.

use super::TransferError;

/// Bytes of file data sent and consumed, against the receiver's window.
#[derive(Debug, Default)]
pub(super) struct SendWindow {
    limit: Option<u64>,
    sent: u64,
    consumed: u64,
}

impl SendWindow {
    /// A window of `limit` bytes, or none.
    pub(super) fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Whether `bytes` more may be sent now. A message larger than the whole
    /// window goes once nothing is outstanding.
    pub(super) fn has_room(&self, bytes: u64) -> bool {
        match self.limit {
            None => true,
            Some(limit) => {
                let outstanding = self.sent - self.consumed;
                outstanding == 0 || outstanding + bytes <= limit
            }
        }
    }

    /// Counts `bytes` of file data sent.
    pub(super) fn sent(&mut self, bytes: u64) {
        self.sent += bytes;
    }

    /// The receiver's report that it consumed `bytes` in all; refused if it
    /// announced no window, goes backwards, or exceeds what was sent.
    pub(super) fn consumed(&mut self, bytes: u64) -> Result<(), TransferError> {
        if self.limit.is_none() {
            return Err(TransferError::Protocol(
                "a consumed report from a receiver that announced no window".into(),
            ));
        }
        if bytes < self.consumed || bytes > self.sent {
            return Err(TransferError::Protocol(format!(
                "consumed {bytes} bytes, after {} consumed and {} sent",
                self.consumed, self.sent
            )));
        }
        self.consumed = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_window_everything_may_go() {
        let mut window = SendWindow::new(None);
        window.sent(u64::MAX / 2);
        assert!(window.has_room(1 << 30));
        assert!(window.consumed(5).is_err());
    }

    #[test]
    fn the_window_bounds_what_is_sent_and_not_consumed() {
        let mut window = SendWindow::new(Some(100));
        assert!(window.has_room(60));
        window.sent(60);
        assert!(window.has_room(40));
        assert!(!window.has_room(41));
        window.sent(40);
        assert!(!window.has_room(1));
        window.consumed(30).unwrap();
        assert!(window.has_room(30));
        assert!(!window.has_room(31));
        window.consumed(100).unwrap();
        assert!(window.has_room(100));
    }

    #[test]
    fn a_message_larger_than_the_window_goes_alone() {
        let mut window = SendWindow::new(Some(10));
        assert!(window.has_room(64));
        window.sent(64);
        assert!(!window.has_room(1));
        window.consumed(64).unwrap();
        assert!(window.has_room(64));
    }

    #[test]
    fn reports_that_go_backwards_or_beyond_what_was_sent_are_refused() {
        let mut window = SendWindow::new(Some(100));
        window.sent(50);
        window.consumed(40).unwrap();
        assert!(window.consumed(39).is_err());
        assert!(window.consumed(51).is_err());
        window.consumed(50).unwrap();
    }
}
