//! Attach to the testenv started by `hack/testenv/up` (through KUBECONFIG) and give each
//! test its own namespace, deleted when the guard drops.

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

pub struct TestNamespace {
    pub client: Client,
    pub name: String,
    keep: bool,
}

/// A client for the running testenv; panics with the fix when none is running.
pub async fn client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: integration tests need the testenv. \
             Run `make testenv-up && source .testenv/env`, or `make test`."
        );
    }
    Client::try_default()
        .await
        .expect("build a kube client from KUBECONFIG")
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` with the restricted Pod Security level enforced, so every
    /// pod a test creates must meet it. Set PARITY_KEEP_NAMESPACES=1 to keep it for debugging.
    pub async fn new(prefix: &str) -> TestNamespace {
        let client = client().await;
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "parity.dev/test": "true",
                }
            }
        }))
        .expect("namespace json");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        TestNamespace {
            client,
            name,
            keep: std::env::var_os("PARITY_KEEP_NAMESPACES").is_some(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("keeping namespace {}", self.name);
            return;
        }
        // Drop cannot await: delete from a short-lived runtime on another thread, with a
        // client of its own (the test's client is bound to the test's runtime, which this
        // thread blocks). Namespace deletion then finishes in the background.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async move {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::background())
                            .await;
                    }
                });
            }
        })
        .join();
    }
}
