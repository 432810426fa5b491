//! The committed fuzz corpus (fuzz/corpus/<target>/) replayed through the same target
//! functions afl runs (fuzz/src/targets.rs): every input that once found a new path must
//! still go through without a panic. Guards the parsers in `make test` without afl.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_committed_fuzz_input_goes_through_its_target_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in targets::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        // An empty directory would make this test pass without testing anything.
        assert!(
            !inputs.is_empty(),
            "no corpus for {target} in {}",
            dir.display()
        );
        for path in inputs {
            let data = std::fs::read(&path).unwrap();
            let ran = std::panic::catch_unwind(|| targets::run(target, &data))
                .unwrap_or_else(|_| panic!("{target} panicked on {}", path.display()));
            assert!(ran, "unknown target {target}");
        }
    }
}
