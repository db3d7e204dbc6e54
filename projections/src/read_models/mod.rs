//! The read models, one module each: its projection and its queries.

pub mod streams;
