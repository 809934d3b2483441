//! One Kafka record as a batch holds it (Spark's `ConsumerRecord`).

/// One Kafka record (Spark's `ConsumerRecord`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record's timestamp in ms, if it has one.
    pub timestamp: Option<i64>,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumerRecord {
    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl crate::SparkDisplay for ConsumerRecord {
    fn write_spark(&self, out: &mut String) {
        out.push_str(&format!(
            "ConsumerRecord(topic = {}, partition = {}, offset = {}, timestamp = {}, key = {}, value = {})",
            self.topic,
            self.partition,
            self.offset,
            self.timestamp.unwrap_or(-1),
            self.key.as_deref().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into()),
            self.value.as_deref().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into()),
        ));
    }
}
