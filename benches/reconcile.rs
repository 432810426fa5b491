//! The decision part of one reconcile, without API latency: validate the spec, build every
//! object, serialize them for server-side apply, and compute the conditions.

use criterion::{Criterion, criterion_group, criterion_main};
use parity_operator::api::{ParityEnvironment, validate};
use parity_operator::controller::conditions::{self, JobState, Observed};
use parity_operator::resources::{BuildContext, build_all};
use parity_operator::verdict::Verdict;

fn env() -> ParityEnvironment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "parity.dev/v1alpha1", "kind": "ParityEnvironment",
        "metadata": {"name": "dev", "namespace": "team", "uid": "0b9f3a52-7d1e-4f6a-9c1d-2f7a8e5b4c3d", "generation": 3},
        "spec": {"tier": "Local", "parityLevel": 2,
                 "dynamodb": {"tables": [
                     {"name": "orders", "partitionKey": {"name": "customerId", "type": "S"}, "sortKey": {"name": "orderId", "type": "S"}},
                     {"name": "customers", "partitionKey": {"name": "customerId", "type": "S"}}]},
                 "dashboard": {"enabled": true, "decryption": "Server"}}
    }))
    .expect("bench environment")
}

fn reconcile_decisions(c: &mut Criterion) {
    let env = env();
    let ctx = BuildContext::new("parity-operator:bench");
    let observed = Observed {
        suspended: false,
        kms_needed: true,
        kms_available: true,
        external_kms_key: None,
        dynamodb_pod_needed: true,
        dynamodb_available: true,
        dynamodb_external: None,
        bootstrap: JobState::Succeeded,
        dashboard_needed: true,
        dashboard_available: true,
        secrets: Verdict::ok("NotConfigured", ""),
        in_sync: Verdict::ok("NotMirrored", ""),
        kms_problem: None,
        dynamodb_problem: None,
        dashboard_problem: None,
    };
    c.bench_function("reconcile_decisions_local_level2", |b| {
        b.iter(|| {
            let valid = validate(&env).expect("valid");
            let objects = build_all(&valid, valid.profile, &ctx);
            let bytes: usize = objects.iter().map(|o| o.to_value().to_string().len()).sum();
            let conds = conditions::compute(&observed, valid.generation);
            (bytes, conds.len())
        })
    });
}

criterion_group!(benches, reconcile_decisions);
criterion_main!(benches);
