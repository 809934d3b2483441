//! [`Job`]: what the build function gets on every worker to create sources and DStreams.

use std::rc::Rc;

use timely::dataflow::{InputHandleVec, Scope, StreamVec};

use crate::dstream::{DStream, Data, JobCtx, WorkerInfo};
use crate::source::queue::QueueReader;
use crate::source::socket::socket_reader;
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, CollectedBatches};
    /// let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(2);
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// // Any BatchReader: here the batch index, on worker 0.
    /// struct Numbers;
    /// impl sluice::source::BatchReader<u64> for Numbers {
    ///     fn name(&self) -> String { "numbers".into() }
    ///     fn read_batch(&mut self, slot: &sluice::source::BatchSlot, out: &mut sluice::source::BatchOut<u64>) -> u64 {
    ///         if slot.worker == 0 { out.push(slot.index); }
    ///         0
    ///     }
    /// }
    /// StreamingContext::new(config).run(move |job| job.source(Numbers).collect_into(&o))?;
    /// assert_eq!(out.values(), vec![vec![0], vec![1]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn source<T: Data, R: BatchReader<T>>(&mut self, reader: R) -> DStream<'s, T> {
        use timely::dataflow::operators::core::Concat;
        let (mut local, mut shipped) = (InputHandleVec::new(), InputHandleVec::new());
        let stream = local
            .to_stream(self.scope)
            .concat(crate::dstream::place::place(shipped.to_stream(self.scope)));
        let inputs = crate::source::SourceInputs {
            local,
            shipped,
            worker: (self.ctx.info.index, self.ctx.info.peers),
        };
        self.feeders
            .push(Box::new(InputFeeder::new(inputs, reader)));
        DStream {
            stream,
            ticks: self.ticks.clone(),
            ctx: Rc::clone(&self.ctx),
        }
    }

    /// One queued batch per interval (Spark's `queueStream`), sliced into the job's default
    /// parallelism as `sc.parallelize` slices; see [`BatchQueue`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, CollectedBatches};
    /// let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(2);
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// let queue = sluice::source::BatchQueue::from_batches(vec![vec!['a'], vec!['b', 'c']]);
    /// StreamingContext::new(config).run(move |job| job.queue_stream(&queue).collect_into(&o))?;
    /// assert_eq!(out.values(), vec![vec!['a'], vec!['b', 'c']]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn queue_stream<T: Data>(&mut self, queue: &BatchQueue<T>) -> DStream<'s, T> {
        let reader = QueueReader::new(
            queue.clone(),
            self.ctx.info.threads,
            self.ctx.info.parallelism,
        );
        self.source(reader)
    }

    /// Lines read from a TCP server (Spark's `socketTextStream`), received on worker 0 and cut
    /// into one partition per block interval (see [`SocketOptions::block_interval`]), which
    /// are spread over all workers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, CollectedBatches};
    /// // A server that sends two lines and closes (what `nc -lk 9999` would type).
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// std::thread::spawn(move || { let (mut c, _) = listener.accept().unwrap(); c.write_all(b"hello world\nhello\n").unwrap(); });
    /// let config = StreamingConfig::new(Duration::from_millis(200))?.max_batches(5);
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// StreamingContext::new(config).run(move |job| job.socket_text_stream("127.0.0.1", port).collect_into(&o))?;
    /// assert_eq!(out.values().concat(), vec!["hello world".to_owned(), "hello".to_owned()]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn socket_text_stream(&mut self, host: &str, port: u16) -> DStream<'s, String> {
        self.socket_text_stream_with(host, port, SocketOptions::default())
    }

    /// [`socket_text_stream`](Job::socket_text_stream) with options (line limit, dead letters).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::source::{DeadLetters, SocketOptions};
    /// let options = SocketOptions { max_line_bytes: 1024, dead_letters: DeadLetters::counting(), ..SocketOptions::default() };
    /// let config = sluice::StreamingConfig::new(Duration::from_millis(100))?.max_batches(1);
    /// // No server listening: the receiver retries (and says so) until the job ends.
    /// sluice::StreamingContext::new(config).run(move |job| {
    ///     job.socket_text_stream_with("127.0.0.1", 9, options.clone()).count().print(1);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn socket_text_stream_with(
        &mut self,
        host: &str,
        port: u16,
        options: SocketOptions,
    ) -> DStream<'s, String> {
        let receiver = self.ctx.info.index == 0;
        // The log is kept by the address the host resolves to, so that `localhost` and
        // `127.0.0.1` find one log; a log kept by the name as given (by earlier versions) is used
        // while it is the only one there.
        let resolved = crate::source::socket::resolved_address(host, port).replace(':', "_");
        let as_given = format!("{host}_{port}");
        let folder = match (
            self.ctx.runtime.checkpoint_folder("receiver", &resolved),
            self.ctx.runtime.checkpoint_folder("receiver", &as_given),
        ) {
            (Some(new), Some(old)) if !new.dir.exists() && old.dir.exists() => as_given,
            _ => resolved,
        };
        let wal_dir = self.receiver_wal(
            &format!("socket {host}:{port}"),
            &folder,
            options.write_ahead_log,
        );
        let reader = socket_reader(host, port, options, receiver, wal_dir);
        self.source(reader)
    }

    /// Where a receiver's write-ahead log goes (`None`: no log), by the option and whether the
    /// job has a checkpoint.
    fn receiver_wal(
        &self,
        what: &str,
        folder: &str,
        option: crate::source::WriteAheadLog,
    ) -> Option<crate::checkpoint::storage::Folder> {
        use crate::source::WriteAheadLog;
        let checkpointed = self.ctx.runtime.checkpointed();
        let receiver = self.ctx.info.index == 0;
        let wal = match option {
            WriteAheadLog::On => true,
            WriteAheadLog::WhenCheckpointed => checkpointed,
            WriteAheadLog::Off => {
                if checkpointed && receiver {
                    tracing::warn!(
                        "{what}: the write-ahead log is off in a checkpointed job: records received but not yet in a finished batch are lost if the job crashes (turn it on, or leave `--no-wal` out)"
                    );
                }
                false
            }
        };
        if !wal {
            return None;
        }
        let dir = self.ctx.runtime.checkpoint_folder("receiver", folder);
        if dir.is_none() {
            self.ctx
                .fail_build(crate::error::SluiceError::InvalidConfig {
                    problem: format!(
                        "{what}: the receiver's write-ahead log needs a checkpoint directory"
                    ),
                    fix: "add `.checkpoint(dir)` to the configuration (`--checkpoint DIR`)".into(),
                });
        }
        dir
    }

    /// The receiver-based Kafka stream (Spark's `KafkaUtils.createStream(...).map(_._2)`, the
    /// course's §4.2.1): the values of the records of `config`'s topics, received by a consumer
    /// on worker 0 and cut into one partition per block interval. With a checkpoint, every
    /// record is in the receiver's write-ahead log, with the offsets after it, before a batch
    /// can take it, so a crash loses nothing and reads nothing twice (see
    /// [`source::kafka`](crate::source::kafka)'s receiver). `options` are the socket
    /// receiver's: write-ahead log, block interval, dead letters (values that are not UTF-8).
    /// Prefer [`kafka_direct_stream`](Job::kafka_direct_stream); Spark removed this one in 3.0.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sluice::source::kafka::{ConsumerStrategy, KafkaConfig};
    /// let config = sluice::StreamingConfig::new(Duration::from_secs(2))?.checkpoint("/tmp/receiver-ck");
    /// let kafka = KafkaConfig::new("127.0.0.1:9092", "g", ConsumerStrategy::Subscribe(vec!["logs".into()]));
    /// sluice::StreamingContext::new(config).run(move |job| {
    ///     job.kafka_receiver_stream(kafka.clone(), Default::default()).count().print(10);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    #[cfg(feature = "kafka")]
    pub fn kafka_receiver_stream(
        &mut self,
        config: crate::source::kafka::KafkaConfig,
        options: SocketOptions,
    ) -> DStream<'s, String> {
        let receiver = self.ctx.info.index == 0;
        let folder = format!("kafka_{}", config.group());
        let wal_dir = self.receiver_wal("kafka receiver", &folder, options.write_ahead_log);
        match crate::source::kafka::receiver::reader(config, receiver, wal_dir, &options) {
            Ok(reader) => self.source(reader),
            Err(e) => {
                self.ctx.fail_build(e);
                self.union(&[])
            }
        }
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

    /// The lines of the files that appear in `dir` (Spark's `textFileStream`): a local
    /// directory, `s3://bucket/prefix` or `hdfs://namenode:port/dir`; see
    /// [`source::file`](crate::source::file) for what a batch picks and when a file counts as
    /// complete.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::source::file::{FileCompletion, FileStreamOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().to_str().unwrap().to_owned();
    /// let config = sluice::StreamingConfig::new(Duration::from_millis(50))?.max_batches(40);
    /// let out = sluice::CollectedBatches::new();
    /// let o = out.clone();
    /// let writer = dir.path().to_owned();
    /// std::thread::spawn(move || { std::thread::sleep(Duration::from_millis(300)); std::fs::write(writer.join("a.txt"), "hello\nworld\n").unwrap(); });
    /// let options = FileStreamOptions::default().completion(FileCompletion::Visible);
    /// sluice::StreamingContext::new(config).run(move |job| job.file_stream(&path, options.clone()).collect_into(&o))?;
    /// assert_eq!(out.values().concat(), ["hello", "world"]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    #[cfg(feature = "files")]
    pub fn text_file_stream(&mut self, dir: &str) -> DStream<'s, String> {
        self.file_stream(dir, crate::source::file::FileStreamOptions::default())
    }

    /// [`text_file_stream`](Job::text_file_stream) with options: a path filter and
    /// `new_files_only` (Spark's `fileStream(dir, filter, newFilesOnly)`), a glob, nested
    /// directories, the completion rule, a rate limit, dead letters.
    #[cfg(feature = "files")]
    pub fn file_stream(
        &mut self,
        dir: &str,
        options: crate::source::file::FileStreamOptions,
    ) -> DStream<'s, String> {
        crate::source::file::file_stream(self, dir, options)
    }

    /// Random words at a set rate, as text lines (for demos and benchmarks).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, CollectedBatches};
    /// let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(2);
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// use sluice::source::GeneratorConfig;
    /// StreamingContext::new(config).run(move |job| {
    ///     job.generator(GeneratorConfig { rate_per_sec: 100, words_per_line: 1, ..GeneratorConfig::default() }).count().collect_into(&o)
    /// })?;
    /// assert_eq!(out.values().concat().iter().sum::<u64>(), 200); // 100 one-word lines per second, 2 batches of 1 s
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn generator(&mut self, config: GeneratorConfig) -> DStream<'s, String> {
        let reader = Generator::new(config, self.ctx.info.parallelism);
        self.source(reader)
    }

    /// `f(time, batches)` with the whole of batch `time` of every stream, in the order given,
    /// on one worker (Spark's `ssc.transform(Seq(streams), (rdds, time) => rdd)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{CollectedBatches, StreamingConfig, StreamingContext};
    /// let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(1);
    /// let (a, b) = (sluice::source::BatchQueue::from_batches(vec![vec![1u64, 2]]), sluice::source::BatchQueue::from_batches(vec![vec![10u64]]));
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// StreamingContext::new(config).run(move |job| {
    ///     let streams = [job.queue_stream(&a), job.queue_stream(&b)];
    ///     job.transform(&streams, |_time, batches: Vec<Vec<u64>>| {
    ///         Some(batches.iter().map(|b| b.iter().sum::<u64>()).collect::<Vec<_>>())
    ///     })
    ///     .collect_into(&o)
    /// })?;
    /// assert_eq!(out.values(), vec![vec![vec![3, 10]]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform<T: Data, U: Data, I>(
        &self,
        streams: &[DStream<'s, T>],
        f: impl Fn(crate::Time, Vec<Vec<T>>) -> I + 'static,
    ) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        let n = streams.len();
        let tagged: Vec<DStream<'s, (usize, T)>> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| s.map(move |x| (i, x)))
            .collect();
        self.union(&tagged).transform_whole(move |time, records| {
            let mut batches: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
            for (i, x) in records {
                batches[i].push(x);
            }
            f(time, batches)
        })
    }

    /// Batch `t` of the result holds batch `t` of every stream (Spark's `ssc.union`); an empty
    /// list gives a stream with no records.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, CollectedBatches};
    /// let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(2);
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// let a = sluice::source::BatchQueue::from_batches(vec![vec![1u64], vec![2]]);
    /// let b = sluice::source::BatchQueue::from_batches(vec![vec![10u64], vec![20]]);
    /// StreamingContext::new(config).run(move |job| {
    ///     let streams = [job.queue_stream(&a), job.queue_stream(&b)];
    ///     job.union(&streams).collect_into(&o)
    /// })?;
    /// assert_eq!(out.values().into_iter().map(|mut b| { b.sort(); b }).collect::<Vec<_>>(), vec![vec![1, 10], vec![2, 20]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
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
