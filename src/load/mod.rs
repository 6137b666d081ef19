//! Load generation: many publishers from one process (open model, ramp),
//! their records, and the aggregation into a report.

pub mod aggregate;
pub mod hist;
pub mod record;
