//! Text from other peers, made safe to print.

/// Replaces control characters (escape sequences, carriage returns, line
/// breaks) so text from a peer cannot rewrite the terminal or forge lines.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(
            printable("hi\x1b[2Jthere\r\nfake: line"),
            "hi\u{fffd}[2Jthere\u{fffd}\u{fffd}fake: line"
        );
        assert_eq!(printable("ünïcödé ✓ 🚀"), "ünïcödé ✓ 🚀");
    }
}
