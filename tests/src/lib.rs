//! Helpers for the end-to-end tests in `tests/`: starting the real binaries.
