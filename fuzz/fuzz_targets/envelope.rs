//! Arbitrary bytes into the envelope parser and, when they parse, into decryption with a
//! fixed data key: neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parity_operator::crypto::{EncryptionContext, Envelope, SecretKey, open_with_data_key};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        // A parsed envelope serializes back to the same bytes.
        assert_eq!(env.to_bytes().ok().as_deref(), Some(data));
        let _ = open_with_data_key(data, &SecretKey::from_bytes([7; 32]), &EncryptionContext::new());
    }
});
