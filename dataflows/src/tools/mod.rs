//! What a course reader needs around a job, as `sluice` subcommands: `feed` (a socket server or
//! a Kafka producer of the course's records, so that no `nc` or Kafka console tool is needed)
//! `topic create`/`topic list` and `consume` (Kafka's console tools), and `checkpoint show`
//! (what a checkpoint holds and what a restart will do).

pub mod checkpoint;
pub mod feed;
pub mod history;
pub mod kafka;
mod records;
