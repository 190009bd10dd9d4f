//! Replays the fuzz corpus (`tools/fuzz/corpus/<target>/`, found by cargo-fuzz runs and
//! committed) through the same checks the fuzz targets make, on the stable toolchain.

#[path = "../tools/fuzz/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_fuzz_corpus_input_passes_its_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz/corpus");
    for (name, check) in targets::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{name}: {} fails", path.display());
        }
        eprintln!("{name}: {} inputs", inputs.len());
    }
}
