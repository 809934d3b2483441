//! Kafka offsets kept in a checkpoint on an object store (`--store checkpoint --checkpoint
//! s3://…`): each offset is an object in the bucket, which a store made afresh (a restart on
//! another machine) reads back; nothing goes to a local directory named `s3:`.

mod common;
#[path = "files/s3.rs"]
#[allow(dead_code)] // (the S3 server's other helpers serve files.rs)
mod s3;

use object_store::ObjectStoreExt;
use sluice::offsets::{CheckpointStore, OffsetStore, TopicPartition};

#[test]
fn checkpoint_offsets_on_s3_are_objects_in_the_bucket() {
    let server = s3::S3Server::start(false);
    server.create_bucket("offsets");
    let cwd = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary, before it starts any thread of its own: the store
    // reads its endpoint and keys from the environment, as the `sluice` binary's does.
    unsafe {
        for (k, v) in server.vars() {
            std::env::set_var(k, v);
        }
    }
    std::env::set_current_dir(cwd.path()).unwrap();

    let tp = TopicPartition::new("orders", 3);
    let mut store = CheckpointStore::new("s3://offsets/jobs/etl");
    store.commit("etl-group", &[(tp.clone(), 42)]).unwrap();
    store.commit("etl-group", &[(tp.clone(), 57)]).unwrap();
    assert!(
        store
            .describe()
            .starts_with("checkpoint s3://offsets/jobs/etl")
    );

    // A store made afresh reads what was committed last.
    let mut again = CheckpointStore::new("s3://offsets/jobs/etl");
    assert_eq!(
        again
            .load("etl-group", std::slice::from_ref(&tp))
            .unwrap()
            .get(&tp),
        Some(&57)
    );
    // A partition never committed has no offset (auto.offset.reset decides).
    let other = TopicPartition::new("orders", 4);
    assert!(again.load("etl-group", &[other]).unwrap().is_empty());

    // It is an object in the bucket, and nothing went to the local directory.
    let object = s3::block_on(async {
        let got = server
            .store("offsets")
            .get(&object_store::path::Path::from(
                "jobs/etl/kafka-offsets/etl-group/orders/3",
            ))
            .await
            .expect("the offset is an object in the bucket");
        got.bytes().await.unwrap()
    });
    assert_eq!(&object[..], b"57");
    assert!(
        std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "nothing written locally"
    );
}
