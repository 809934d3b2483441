//! `socket_text_stream`: a receiver reading `\n`-separated UTF-8 lines from a TCP server.
//!
//! As in Spark, the receiver runs on one worker (global worker 0) in a thread of its own and
//! buffers what it reads; cutting batch `t` takes the whole buffer at once, so every line read
//! lands in exactly one batch. The buffer is cut into **blocks**, one per block interval
//! (Spark's `spark.streaming.blockInterval`, 200 ms by default) in which lines arrived; each
//! block is one partition of the batch (batch interval / block interval = tasks, as the course's
//! tuning chapter says), and blocks are spread over all workers. Lines end at `\n` (a trailing
//! `\r` is removed, like Java's `readLine`); a last line without `\n` is kept when the server
//! closes the connection cleanly.
//!
//! Faults: a refused or lost connection is retried with backoff (100 ms doubling to
//! [`SocketOptions::max_backoff`]) and logged; the job keeps running. A line that is not UTF-8,
//! is longer than [`SocketOptions::max_line_bytes`], or is cut by a connection reset goes to the
//! [`DeadLetters`](crate::source::DeadLetters) and is counted in the batch metrics; it is never silently dropped.
//!
//! The parts: this one (the reader, a `ReceiverReader` around the socket's receiving thread),
//! `receive` (the thread: connect, read, frame, hand over), `options` (the settings). What
//! every receiver shares — buffer, blocks, limits, write-ahead log, framing — is in
//! `source::receiver`.

mod options;
mod receive;

use std::sync::Arc;

use super::receiver::wal::Wal;
use super::receiver::{ReceiveFn, ReceiverReader, Shared};
pub(crate) use options::Limits;
pub use options::{SocketOptions, WriteAheadLog};

/// `host:port` as the receiver reaches it: the host's first IPv4 address (else its first
/// address), so that `localhost` and `127.0.0.1` are one source; the name as given when it
/// does not resolve now.
pub(crate) fn resolved_address(host: &str, port: u16) -> String {
    use std::net::ToSocketAddrs;
    let addresses: Vec<std::net::SocketAddr> = (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .map_or_else(|| format!("{host}:{port}"), |a| a.to_string())
}

/// The reader of `socket_text_stream`; on the receiving worker (`receiver == true`) its thread
/// starts with the first batch. `wal_dir` is where the write-ahead log lives, when it is on.
pub(crate) fn socket_reader(
    host: &str,
    port: u16,
    options: SocketOptions,
    receiver: bool,
    wal_dir: Option<crate::checkpoint::storage::Folder>,
) -> ReceiverReader {
    let name = format!("socket {host}:{port}");
    let address = format!("{host}:{port}");
    let source = name.clone();
    let limits = options.limits();
    let dead_letters = options.dead_letters.clone();
    let receive: ReceiveFn = Box::new(move |shared: Arc<Shared>, wal: Option<Wal>| {
        receive::receive_socket(&address, &source, &options, &shared, wal)
    });
    let mut reader = ReceiverReader::new(name, receive, receiver, wal_dir, None, limits);
    reader.identity = format!("socket {}", resolved_address(host, port));
    reader.dead_letters = dead_letters;
    reader
}
