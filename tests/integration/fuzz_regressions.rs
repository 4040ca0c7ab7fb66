//! Replays the fuzz targets' seeds and every input the fuzzer once found
//! failing (fuzz/seeds/TARGET/, fuzz/regressions/TARGET/) through the same
//! functions the targets run (authfault::fuzzing), on stable Rust.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("rule_file", authfault::fuzzing::rule_file),
    ("jwt", authfault::fuzzing::jwt),
    ("mutations", authfault::fuzzing::mutations),
    ("targets", authfault::fuzzing::targets),
    ("redaction", authfault::fuzzing::redaction),
];

#[test]
fn every_seed_and_every_input_the_fuzzer_found_passes_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for folder in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                let data = std::fs::read(&path).expect("input");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 5,
        "every target has at least a seed ({replayed} inputs)"
    );
}
