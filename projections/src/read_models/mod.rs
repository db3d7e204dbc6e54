//! The read models, one module each: its projection and its queries.

pub mod apps;
pub mod audit;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod orchestrations;
pub mod services;
pub mod streams;
pub mod units;
