//! Every input kept in `fuzz/corpus/<target>/` run once through its fuzz target's entry point
//! (`sluice::fuzzing`), on stable: what a fuzzer found once stays fixed. The ETL record's
//! corpus is replayed by the `sluice` binary's own tests (its parser lives there).

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::catch_unwind(|| f(&data));
        assert!(run.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: an empty corpus");
    eprintln!("fuzz corpus\t{target}\t{n} inputs");
}

#[test]
fn checkpoint_dir() {
    replay("checkpoint_dir", sluice::fuzzing::checkpoint_dir);
}

#[test]
fn framed_file() {
    replay("framed_file", sluice::fuzzing::framed_file);
}

#[test]
fn plan_log() {
    replay("plan_log", sluice::fuzzing::plan_log);
}

#[test]
fn write_ahead_log() {
    replay("write_ahead_log", sluice::fuzzing::write_ahead_log);
}

#[test]
fn line_splitter() {
    replay("line_splitter", sluice::fuzzing::line_splitter);
}

#[test]
fn hostfile() {
    replay("hostfile", sluice::fuzzing::hostfile);
}

/// The corpus holds a real checkpoint (the one `fuzz/seed.sh` packs), so the target reaches
/// past the first checks; and packing round-trips.
#[test]
fn the_checkpoint_corpus_holds_a_real_checkpoint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint_dir");
    let real = std::fs::read_dir(dir).unwrap().any(|e| {
        let files = sluice::fuzzing::unpack(&std::fs::read(e.unwrap().path()).unwrap());
        let has = |f: &dyn Fn(&str) -> bool| files.iter().any(|(n, _)| f(n));
        let whole = has(&|n| n == "metadata")
            && has(&|n| n.starts_with("plans/"))
            && has(&|n| n.ends_with("/MANIFEST"))
            && has(&|n| n.ends_with(".wal"));
        if whole {
            assert_eq!(
                sluice::fuzzing::unpack(&sluice::fuzzing::pack(&files)),
                files
            );
        }
        whole
    });
    assert!(
        real,
        "no input of the corpus is a whole checkpoint: run fuzz/seed.sh"
    );
}
