//! [`Job`]: what the build function gets on every worker to create sources and DStreams.

use std::rc::Rc;

use timely::dataflow::{InputHandleVec, Scope, StreamVec};

use crate::dstream::{DStream, Data, JobCtx, WorkerInfo};
use crate::source::queue::QueueReader;
use crate::source::socket::SocketReader;
use crate::source::{
    BatchQueue, BatchReader, Feeder, Generator, GeneratorConfig, InputFeeder, SocketOptions,
};

/// The sources and context of one job, as seen by one worker while it builds the dataflow.
///
/// The build function given to [`StreamingContext::start`](crate::StreamingContext::start) runs
/// once on every worker with a `Job`; it must build the same DStreams in the same order on all
/// of them (timely's rule), which it does when it depends only on its configuration.
pub struct Job<'s> {
    pub(crate) scope: Scope<'s, u64>,
    pub(crate) ticks: StreamVec<'s, u64, u64>,
    pub(crate) ctx: Rc<JobCtx>,
    pub(crate) feeders: Vec<Box<dyn Feeder>>,
}

impl<'s> Job<'s> {
    /// Where this worker sits in the job.
    pub fn worker(&self) -> WorkerInfo {
        self.ctx.info
    }

    /// The timely scope, for custom operators.
    pub fn scope(&self) -> Scope<'s, u64> {
        self.scope
    }

    /// A DStream read from any [`BatchReader`].
    pub fn source<T: Data, R: BatchReader<T>>(&mut self, reader: R) -> DStream<'s, T> {
        let mut input = InputHandleVec::new();
        let stream = input.to_stream(self.scope);
        self.feeders.push(Box::new(InputFeeder::new(input, reader)));
        DStream {
            stream,
            ticks: self.ticks.clone(),
            ctx: Rc::clone(&self.ctx),
        }
    }

    /// One queued batch per interval (Spark's `queueStream`); see [`BatchQueue`].
    pub fn queue_stream<T: Data>(&mut self, queue: &BatchQueue<T>) -> DStream<'s, T> {
        let reader = QueueReader::new(queue.clone(), self.ctx.info.threads);
        self.source(reader)
    }

    /// Lines read from a TCP server (Spark's `socketTextStream`), received on worker 0.
    pub fn socket_text_stream(&mut self, host: &str, port: u16) -> DStream<'s, String> {
        self.socket_text_stream_with(host, port, SocketOptions::default())
    }

    /// [`socket_text_stream`](Job::socket_text_stream) with options (line limit, dead letters).
    pub fn socket_text_stream_with(
        &mut self,
        host: &str,
        port: u16,
        options: SocketOptions,
    ) -> DStream<'s, String> {
        let wal_dir = if options.write_ahead_log {
            match self
                .ctx
                .runtime
                .checkpoint_folder("receiver", &format!("{host}_{port}"))
            {
                Some(dir) => Some(dir),
                None => {
                    self.ctx
                        .fail_build(crate::error::SluiceError::InvalidConfig {
                            problem:
                                "the socket receiver's write-ahead log needs a checkpoint directory"
                                    .into(),
                            fix: "add `.checkpoint(dir)` to the configuration (`--checkpoint DIR`)"
                                .into(),
                        });
                    None
                }
            }
        } else {
            None
        };
        let reader = SocketReader::new(host, port, options, self.ctx.info.index == 0, wal_dir);
        self.source(reader)
    }

    /// A Kafka direct stream (Spark's `KafkaUtils.createDirectStream`): each partition read by
    /// one worker, exact offset ranges per batch, offsets committed after the outputs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sluice::source::kafka::{ConsumerStrategy, KafkaConfig};
    /// let config = sluice::StreamingConfig::new(Duration::from_secs(2))?;
    /// let kafka = KafkaConfig::new("127.0.0.1:9092", "g", ConsumerStrategy::Subscribe(vec!["logs".into()]));
    /// sluice::StreamingContext::new(config).run(move |job| {
    ///     job.kafka_direct_stream(kafka.clone()).count().print(10);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    #[cfg(feature = "kafka")]
    pub fn kafka_direct_stream(
        &mut self,
        config: crate::source::kafka::KafkaConfig,
    ) -> crate::source::kafka::DirectStream<'s> {
        let reader = crate::source::kafka::KafkaReader::new(config, self.ctx.runtime.clone());
        crate::source::kafka::DirectStream::new(self.source(reader))
    }

    /// Random words at a set rate, as text lines (for demos and benchmarks).
    pub fn generator(&mut self, config: GeneratorConfig) -> DStream<'s, String> {
        let reader = Generator::new(config, self.ctx.info.index);
        self.source(reader)
    }

    /// Batch `t` of the result holds batch `t` of every stream (Spark's `ssc.union`); an empty
    /// list gives a stream with no records.
    pub fn union<T: Data>(&self, streams: &[DStream<'s, T>]) -> DStream<'s, T> {
        match crate::dstream::stateless::union_all(streams) {
            Some(s) => s,
            None => DStream {
                stream: timely::dataflow::operators::generic::operator::empty(self.scope),
                ticks: self.ticks.clone(),
                ctx: Rc::clone(&self.ctx),
            },
        }
    }
}
