//! Procedural macros for evloop. Placeholder: `#[event_machine]` lands with its own
//! issue; until then a machine is written by hand against `evloop::Machine`.
