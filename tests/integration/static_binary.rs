//! The container image's binary: the musl release build is statically
//! linked and runs. CI builds it (`.ci/run`) and then runs the ignored test
//! here; the ELF reading itself is checked on every run against this test
//! binary, which is dynamically linked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What an ELF file needs from a dynamic loader.
#[derive(Debug)]
struct Linkage {
    /// A `PT_INTERP` program header: the kernel starts a loader first.
    interpreter: bool,
    /// `DT_NEEDED` entries: shared libraries to load.
    needed: usize,
}

fn read_u16(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Reads the program headers and the dynamic section of a little-endian
/// ELF64 file (x86_64, aarch64).
fn linkage(path: &Path) -> Linkage {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!((bytes[4], bytes[5]), (2, 1), "ELF64 little-endian expected");
    let phoff = usize::try_from(read_u64(&bytes, 0x20)).expect("offset");
    let (phentsize, phnum) = (read_u16(&bytes, 0x36), read_u16(&bytes, 0x38));
    let mut found = Linkage {
        interpreter: false,
        needed: 0,
    };
    for index in 0..phnum {
        let header = phoff + index * phentsize;
        let kind = u32::from_le_bytes(bytes[header..header + 4].try_into().expect("4 bytes"));
        match kind {
            PT_INTERP => found.interpreter = true,
            PT_DYNAMIC => {
                let offset = usize::try_from(read_u64(&bytes, header + 0x08)).expect("offset");
                let size = usize::try_from(read_u64(&bytes, header + 0x20)).expect("size");
                found.needed += bytes[offset..offset + size]
                    .chunks_exact(16)
                    .filter(|entry| read_u64(entry, 0) == DT_NEEDED)
                    .count();
            }
            _ => {}
        }
    }
    found
}

#[test]
fn the_elf_check_sees_a_dynamically_linked_binary() {
    // This test binary is built for the host's glibc target.
    let exe = std::env::current_exe().expect("the test binary");
    let found = linkage(&exe);
    assert!(found.interpreter, "{found:?}");
    assert!(found.needed > 0, "{found:?}");
}

/// `AUTHFAULT_STATIC_BIN`, else the musl release build under the target
/// folder.
fn static_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AUTHFAULT_STATIC_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("x86_64-unknown-linux-musl/release/authfault")
}

#[test]
#[ignore = "needs the musl build first: cargo build --release --locked --target x86_64-unknown-linux-musl"]
fn the_musl_release_binary_is_static_and_runs() {
    let path = static_binary();
    assert!(
        path.is_file(),
        "{} is missing; build it with: cargo build --release --locked --target x86_64-unknown-linux-musl",
        path.display()
    );
    let found = linkage(&path);
    assert!(!found.interpreter, "{} asks for a loader", path.display());
    assert_eq!(found.needed, 0, "{} needs shared libraries", path.display());
    let out = Command::new(&path)
        .arg("--version")
        .env_clear()
        .output()
        .expect("the static binary starts");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("authfault {}", env!("CARGO_PKG_VERSION"))
    );
}
