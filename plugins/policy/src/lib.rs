//! wasmkafka's decision logic, as pure functions: no I/O, no async, no clock, no randomness.
//!
//! The native host uses these as its built-in assignors and reset policies, and the Wasm
//! plugins in `plugins/` compile the very same code: one copy of each algorithm, so the native
//! and the sandboxed versions cannot drift apart (a differential test checks it).

#![warn(missing_docs)]

pub mod assign;
pub mod reset;
