//! A real Kafka-protocol broker per test: noida-db (installed by `scripts/kafka-broker.sh`)
//! on a free loopback port with a fresh data dir; stopped when dropped. Helpers create topics
//! and produce records with rdkafka.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    data: tempfile::TempDir,
}

fn noida() -> PathBuf {
    // The workspace root holds `.tools`; the command line's tests run one folder below it.
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(".tools/noida/bin/noida-db"))
        .find(|bin| bin.exists());
    bin.expect("the test broker is not installed: run `scripts/kafka-broker.sh install` (scripts/test.sh does)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("a temp dir"),
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let child = Command::new(noida())
            .args(["start", "--data-dir"])
            .arg(self.data.path())
            .args([
                "--host",
                "127.0.0.1",
                "--only",
                "kafka",
                "--kafka-port",
                &self.port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start noida-db");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGTERM: it saves its data).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let result =
            futures::executor::block_on(admin.create_topics([&topic], &AdminOptions::new()))
                .expect("create topic");
        for r in result {
            r.expect("topic created");
        }
    }

    /// Produces `values` to `partition` of `topic`, waiting until all are acknowledged.
    pub fn produce(&self, topic: &str, partition: i32, values: &[String]) {
        Broker::attach(&self.brokers()).produce_keyed(topic, partition, values, true);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Broker {
    /// Grows `topic` to `partitions` partitions.
    pub fn add_partitions(&self, topic: &str, partitions: usize) {
        use rdkafka::admin::NewPartitions;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .expect("admin client");
        let result = futures::executor::block_on(admin.create_partitions(
            [&NewPartitions::new(topic, partitions)],
            &AdminOptions::new(),
        ))
        .expect("create partitions");
        for r in result {
            r.expect("partitions added");
        }
    }
}

impl Broker {
    /// A handle on a broker another test thread started (for producing only; never stops it).
    pub fn attach(brokers: &str) -> AttachedBroker {
        AttachedBroker {
            brokers: brokers.to_owned(),
        }
    }
}

/// A broker started elsewhere.
pub struct AttachedBroker {
    brokers: String,
}

impl AttachedBroker {
    /// Produces `values` to `partition` of `topic`, waiting until all are acknowledged.
    pub fn produce(&self, topic: &str, partition: i32, values: &[String]) {
        self.produce_keyed(topic, partition, values, false);
    }

    /// As `produce`; with `keyed`, each value is its own key.
    pub fn produce_keyed(&self, topic: &str, partition: i32, values: &[String], keyed: bool) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for v in values {
            let mut record = BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .payload(v.as_str());
            if keyed {
                record = record.key(v.as_str());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("records acknowledged");
    }
}

impl Broker {
    /// Every record of `topic` (all partitions), as (value, headers).
    pub fn read_all(&self, topic: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.read_all_with(topic, "read_uncommitted")
    }

    /// Every record of `topic` visible at `isolation` (`read_committed` skips aborted ones);
    /// stops when the partitions are read to their end or nothing arrives for 3 s.
    pub fn read_all_with(
        &self,
        topic: &str,
        isolation: &str,
    ) -> Vec<(String, Vec<(String, String)>)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut total = 0i64;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                total += high - low;
                tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Instant::now();
        while (out.len() as i64) < total
            && Instant::now() < deadline
            && last.elapsed() < Duration::from_secs(3)
        {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                last = Instant::now();
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((value, headers));
            }
        }
        out
    }
}
