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

/// The seeds are what they claim: the checkpoint seed opens and restores (so the target reaches
/// past the first check), and the line splitter's seed yields lines and dead letters.
#[test]
fn the_checkpoint_seed_is_a_real_checkpoint() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint_dir/seed-driver-ha");
    let files = sluice::fuzzing::unpack(&std::fs::read(seed).unwrap());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"metadata"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("plans/")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("/MANIFEST")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".wal")), "{names:?}");
    assert_eq!(
        sluice::fuzzing::unpack(&sluice::fuzzing::pack(&files)),
        files
    );
}
