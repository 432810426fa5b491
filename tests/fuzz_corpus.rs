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

/// Stand-in for afl where its instrumented build is not available (docs/envelope.md#fuzzing):
/// random stacked mutations of the committed corpus (bit flips, interesting integers at any
/// offset, inserts, deletes, splices) through every target for FUZZ_SECONDS each (default
/// 5), FUZZ_TARGETS to pick. Not coverage-guided. A panicking input is written to
/// fuzz/out/<target>/ and fails the test. `cargo test --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "long-running; run on purpose"]
fn mutated_corpus_inputs_never_panic() {
    use rand::{Rng, SeedableRng};
    let seconds: u64 =
        std::env::var("FUZZ_SECONDS").map_or(5, |s| s.parse().expect("FUZZ_SECONDS"));
    let wanted = std::env::var("FUZZ_TARGETS").unwrap_or_default();
    let seed: u64 = std::env::var("FUZZ_SEED")
        .map_or_else(|_| rand::random(), |s| s.parse().expect("FUZZ_SEED"));
    println!("FUZZ_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // The assertions inside the targets print through the panic hook; count them instead.
    std::panic::set_hook(Box::new(|_| {}));
    for target in targets::TARGETS
        .iter()
        .filter(|t| wanted.is_empty() || wanted.split(' ').any(|w| w == **t))
    {
        let corpus: Vec<Vec<u8>> = std::fs::read_dir(root.join("corpus").join(target))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut execs = 0u64;
        while std::time::Instant::now() < deadline {
            let mut data = corpus[rng.gen_range(0..corpus.len())].clone();
            for _ in 0..rng.gen_range(1..=8) {
                mutate(&mut rng, &mut data, &corpus);
            }
            execs += 1;
            if std::panic::catch_unwind(|| targets::run(target, &data)).is_err() {
                let _ = std::panic::take_hook();
                let dir = root.join("out").join(target);
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("crash-{seed}-{execs}"));
                std::fs::write(&path, &data).unwrap();
                panic!("{target} panicked on {} (FUZZ_SEED={seed})", path.display());
            }
        }
        println!("[fuzz] {target}: {execs} execs in {seconds}s, no panic");
    }
    let _ = std::panic::take_hook();
}

fn mutate(rng: &mut impl rand::Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    const INTERESTING: &[u64] = &[
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0x100,
        0x7fff,
        0xffff,
        0x7fff_ffff,
        0xffff_ffff,
        u64::MAX,
    ];
    let at = |rng: &mut dyn rand::RngCore, len: usize| {
        if len == 0 {
            0
        } else {
            rng.next_u32() as usize % len
        }
    };
    match rng.gen_range(0..7) {
        0 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] = rng.r#gen();
        }
        2 => {
            // An interesting integer, big-endian (the binary formats) or as ASCII digits (JSON).
            let v = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            let bytes = match rng.gen_range(0..4) {
                0 => vec![v as u8],
                1 => (v as u16).to_be_bytes().to_vec(),
                2 => (v as u32).to_be_bytes().to_vec(),
                _ => v.to_string().into_bytes(),
            };
            let i = at(rng, data.len() + 1);
            let end = (i + bytes.len()).min(data.len());
            data.splice(i..end, bytes);
        }
        3 => {
            let i = at(rng, data.len() + 1);
            let n = rng.gen_range(1..=16);
            let fill: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
            data.splice(i..i, fill);
        }
        4 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.gen_range(1..=(data.len() - i).min(64));
            data.drain(i..i + n);
        }
        5 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.gen_range(1..=(data.len() - i).min(64));
            let copy = data[i..i + n].to_vec();
            let j = at(rng, data.len() + 1);
            data.splice(j..j, copy);
        }
        _ => {
            let other = &corpus[at(rng, corpus.len())];
            let i = at(rng, data.len() + 1);
            let j = at(rng, other.len() + 1);
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
        }
    }
}
