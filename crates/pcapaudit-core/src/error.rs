//! The one error type every parser returns.
//!
//! Parsers are pure functions over byte slices. They never panic on hostile input and never allocate
//! more than their input justifies; what they cannot read is one of two things: not enough bytes yet
//! (the caller may feed more and try again), or bytes that can never parse.

use std::fmt;

/// Why a parser gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed; the same call on a longer input may succeed.
    Incomplete,
    /// The input is malformed; the text says what was wrong (it becomes a weird row's detail).
    Invalid(String),
}

impl ParseError {
    /// An ``Invalid`` error from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        ParseError::Invalid(msg.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => f.write_str("truncated"),
            ParseError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ParseError {}

/// Result of a parser.
pub type ParseResult<T> = Result<T, ParseError>;
