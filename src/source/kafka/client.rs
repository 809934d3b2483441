//! librdkafka errors as sluice sees them: which ones waiting cures (a broker down, a leader
//! moving, a timeout), and the error a job fails with for the others.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::SluiceError;
use crate::retry::Failure;

/// Whether waiting may cure `e`: the broker is unreachable or busy, a leader or coordinator is
/// moving, a request timed out, a queue is full, a message was purged by an abort; any
/// transaction error but missing rights (a
/// fenced or broken transactional producer is replaced by a new one, which recovers).
pub(crate) fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    if let KafkaError::Transaction(t) = e {
        return !matches!(
            t.code(),
            TransactionalIdAuthorizationFailed
                | TopicAuthorizationFailed
                | GroupAuthorizationFailed
                | ClusterAuthorizationFailed
        );
    }
    matches!(
        e.rdkafka_error_code(),
        Some(
            BrokerTransportFailure
                | Resolve
                | MessageTimedOut
                | AllBrokersDown
                | OperationTimedOut
                | QueueFull
                | TimedOutQueue
                | LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | NetworkException
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | NotEnoughReplicas
                | NotController
                | KafkaStorageError
                // A message purged by this sink's own abort of a failed transaction: its batch
                // is sent again.
                | PurgeQueue
                | PurgeInflight
        )
    )
}

/// `e` for the retry policy.
pub(crate) fn failure(e: KafkaError) -> Failure<KafkaError> {
    if is_transient(&e) {
        Failure::Transient(e)
    } else {
        Failure::Permanent(e)
    }
}

/// The error a job fails with when Kafka refused `action` for good.
pub(crate) fn kafka_error(action: &str, source: KafkaError) -> SluiceError {
    SluiceError::Kafka {
        action: action.to_owned(),
        source,
    }
}

/// A client that cannot even be created: the settings are wrong.
pub(crate) fn client_config_error(what: &str, e: KafkaError) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("cannot create the Kafka {what}: {e}"),
        fix: "check --brokers and the Kafka settings (they are passed to librdkafka as given)"
            .into(),
    }
}
