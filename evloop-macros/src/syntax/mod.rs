//! The user's input: what it says ([`ast`]), how it is read ([`parse`]), and what is
//! refused before any analysis ([`check`]).

pub mod ast;
pub mod check;
pub mod parse;
