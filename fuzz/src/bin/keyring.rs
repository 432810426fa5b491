//! afl target: see fuzz/src/targets.rs.
fn main() {
    afl::fuzz!(|data: &[u8]| parity_operator_fuzz::targets::keyring(data));
}
