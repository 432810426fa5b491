//! Envelope encrypt/decrypt throughput at 1 KiB, 16 KiB and 1 MiB (LocalKeyProvider with a
//! data-key cache, so the figure is the per-message path: HKDF, AES-256-GCM, framing).
//! bench/crypto.sh runs this beside `openssl speed -evp aes-256-gcm`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use parity_operator::crypto::{
    CacheLimits, EncryptionContext, Encryptor, Keyring, LocalKeyProvider,
};

fn envelope(c: &mut Criterion) {
    let kr = Keyring::seeded(b"bench seed, not a secret", jiff::Timestamp::UNIX_EPOCH).unwrap();
    let enc = Encryptor::with_cache(
        LocalKeyProvider::new(kr),
        CacheLimits {
            max_messages: u64::MAX,
            max_bytes: u64::MAX,
            ..CacheLimits::default()
        },
    );
    let ctx: EncryptionContext = [("tenant", "acme"), ("table", "orders")]
        .into_iter()
        .collect();
    let mut g = c.benchmark_group("envelope");
    for size in [1024usize, 16 * 1024, 1024 * 1024] {
        let pt = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encrypt", size), &pt, |b, pt| {
            b.iter(|| block_on(enc.encrypt(pt, &ctx)).unwrap())
        });
        let env = block_on(enc.encrypt(&pt, &ctx)).unwrap();
        g.bench_with_input(BenchmarkId::new("decrypt", size), &env, |b, env| {
            b.iter(|| block_on(enc.decrypt(env, &ctx)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
