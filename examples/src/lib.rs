//! Example servers live in `examples/`; this library is empty.
