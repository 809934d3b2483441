//! The socket receiver's settings ([`SocketOptions`]) and the limits a receiving thread works
//! within.

use std::time::Duration;

use crate::dead_letter::DeadLetters;
use crate::source::rate::{Backpressure, PidSettings};
use crate::source::receiver::limits::BufferBound;

/// Settings of the socket receiver.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// Longest accepted line in bytes (default 1 MiB); longer ones are set aside.
    pub max_line_bytes: usize,
    /// Longest wait between reconnection attempts (default 2 s).
    pub max_backoff: Duration,
    /// Where malformed lines go (default: counted and logged only).
    pub dead_letters: DeadLetters,
    /// Whether received lines go to a write-ahead log in the job's checkpoint directory
    /// (Spark's `spark.streaming.receiver.writeAheadLog.enable`); by default whenever the job
    /// has a checkpoint directory.
    pub write_ahead_log: WriteAheadLog,
    /// Lines that arrive within one block interval form one block, one partition of the batch
    /// (Spark's `spark.streaming.blockInterval`; default 200 ms).
    pub block_interval: Duration,
    /// The most memory received lines may hold before a batch takes them: by default it
    /// follows the job (see [`BufferBound`]).
    pub buffer: BufferBound,
    /// At most this many lines per second (Spark's `spark.streaming.receiver.maxRate`;
    /// default: no limit). The receiver waits, and the sender with it.
    pub max_rate: Option<u64>,
    /// Adapt the rate to what the job processes (Spark's `spark.streaming.backpressure.*`):
    /// after each batch the PID estimator sets the rate, within `max_rate`.
    pub backpressure: Option<Backpressure>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            max_line_bytes: 1 << 20,
            max_backoff: Duration::from_secs(2),
            dead_letters: DeadLetters::counting(),
            write_ahead_log: WriteAheadLog::WhenCheckpointed,
            block_interval: Duration::from_millis(200),
            buffer: BufferBound::default(),
            max_rate: None,
            backpressure: None,
        }
    }
}

impl SocketOptions {
    /// Turns the receiver's write-ahead log on: every line is durable in
    /// `<checkpoint>/receiver/` before it can enter a batch, and each batch's plan records
    /// which lines it holds, so a job restarted after a crash replays its batches with the same
    /// lines and loses no line it had received. Needs a checkpoint directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{SocketOptions, WriteAheadLog};
    /// let options = SocketOptions::default().with_write_ahead_log();
    /// assert_eq!(options.write_ahead_log, WriteAheadLog::On);
    /// ```
    pub fn with_write_ahead_log(mut self) -> Self {
        self.write_ahead_log = WriteAheadLog::On;
        self
    }

    /// Turns the write-ahead log off, also in a checkpointed job: lines received but not yet in
    /// a finished batch are then lost in a crash (Spark's default; the job warns at start).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{SocketOptions, WriteAheadLog};
    /// let options = SocketOptions::default().without_write_ahead_log();
    /// assert_eq!(options.write_ahead_log, WriteAheadLog::Off);
    /// ```
    pub fn without_write_ahead_log(mut self) -> Self {
        self.write_ahead_log = WriteAheadLog::Off;
        self
    }

    /// Bounds the memory of received lines not yet in a batch at `bytes`, whatever the job
    /// does ([`BufferBound::Fixed`]); at least 64 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{BufferBound, SocketOptions};
    /// let options = SocketOptions::default().max_buffered_bytes(16 << 20);
    /// assert_eq!(options.buffer, BufferBound::Fixed(16 << 20));
    /// ```
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.buffer = BufferBound::Fixed(bytes.max(64 << 10));
        self
    }

    /// At most `lines` per second (Spark's `spark.streaming.receiver.maxRate`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::SocketOptions;
    /// let options = SocketOptions::default().max_rate(10_000);
    /// assert_eq!(options.max_rate, Some(10_000));
    /// ```
    pub fn max_rate(mut self, lines: u64) -> Self {
        self.max_rate = Some(lines.max(1));
        self
    }

    /// Lets backpressure set the rate (Spark's `spark.streaming.backpressure.enabled`):
    /// `initial_rate` lines/s until the first batch has finished, then the PID estimator's
    /// rate, never above [`max_rate`](Self::max_rate).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{PidSettings, SocketOptions};
    /// let options = SocketOptions::default().backpressure(Some(1000), PidSettings::default());
    /// assert_eq!(options.backpressure.unwrap().initial_rate, Some(1000));
    /// ```
    pub fn backpressure(mut self, initial_rate: Option<u64>, pid: PidSettings) -> Self {
        self.backpressure = Some(Backpressure { initial_rate, pid });
        self
    }

    /// The limits a receiver thread works within.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            buffer: self.buffer,
            max_rate: self.max_rate,
            backpressure: self.backpressure,
        }
    }
}

/// What bounds a receiver: see [`SocketOptions::buffer`],
/// [`SocketOptions::max_rate`] and [`SocketOptions::backpressure`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) buffer: BufferBound,
    pub(crate) max_rate: Option<u64>,
    pub(crate) backpressure: Option<Backpressure>,
}

/// When the socket receiver keeps a write-ahead log.
///
/// A checkpointed job restarted after a crash replays the batches after its snapshot from
/// their plans; a receiver's plan is the write-ahead log's lines, so without the log those
/// batches would replay empty and the state go back in time. sluice therefore keeps the log
/// whenever there is a checkpoint, unless told not to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteAheadLog {
    /// On when the job has a checkpoint directory, off otherwise.
    #[default]
    WhenCheckpointed,
    /// On; the job needs a checkpoint directory.
    On,
    /// Off, even with a checkpoint directory (warned at start: received lines can be lost).
    Off,
}
