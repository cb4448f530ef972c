//! The build script of every `functions/<name>` binary (each Cargo.toml names this file).
//!
//! Links the function as a position-dependent executable on Linux. A PIE binary's loader must
//! apply one relative relocation per pointer in `.data.rel.ro` at every start (13,000+ in the
//! larger functions), and each touched page is a copy-on-write fault; linked non-PIE those are
//! resolved at link time. Measured by `scripts/bench-coldstart`: about 0.1 ms of a 1.8 ms cold
//! start for the larger functions. The trade-off: the executable's own code and data are not
//! address-randomised (libraries, heap and stack still are); our own crates forbid `unsafe`.
//! Only binaries get the flag: the library, tests and proc-macros are linked as before.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
