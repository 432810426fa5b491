//! The one table of what differs per tier. Everything tier-dependent in the code base reads a
//! field of [`TierProfile`]; the only `match` on [`Tier`] is in [`profile`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Tier {
    Local,
    #[serde(rename = "CI")]
    Ci,
    Staging,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Local, Tier::Ci, Tier::Staging];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "Local",
            Tier::Ci => "CI",
            Tier::Staging => "Staging",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum KeyProvider {
    #[default]
    Local,
    Kms,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum KeySource {
    #[default]
    Generated,
    Seeded,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PersistenceMode {
    InMemory,
    Volume,
}

/// Where the dashboard's AWS credentials come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialSource {
    /// The access key pair of the flags and environment (emulators accept any).
    Static,
    /// The AWS SDK's default chain: environment, web identity (IRSA), EKS pod identity,
    /// profile, instance metadata.
    DefaultChain,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Static => "static",
            CredentialSource::DefaultChain => "default-chain",
        }
    }
}

/// What runs at one parity level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Components {
    /// The keyring and (provider Local) the `parity kms` key service.
    pub keys: bool,
    /// Application secrets (generated or synced).
    pub secrets: bool,
    /// DynamoDB (a DynamoDB Local pod or the external endpoint) with the declared tables.
    pub dynamodb: bool,
    /// DynamoDB Streams enabled on the tables.
    pub streams: bool,
    /// The dashboard (when spec.dashboard.enabled).
    pub dashboard: bool,
    /// Apps reach KMS and secrets over their real wire protocols (SDK endpoints published).
    pub sdk_wire: bool,
}

/// Where DynamoDB comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamoPlacement {
    /// A DynamoDB Local pod owned by the environment, tables made by the bootstrap Job.
    InCluster,
    /// spec.dynamodb.external; no pod, no bootstrap Job (the operator never creates tables
    /// in a real account).
    External,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierProfile {
    pub tier: Tier,
    /// Indexed by parity level 0..=3.
    pub levels: [Components; 4],
    pub dynamodb: DynamoPlacement,
    /// Persistence when spec.dynamodb.persistence.mode is unset.
    pub default_persistence: PersistenceMode,
    pub key_providers: &'static [KeyProvider],
    pub key_sources: &'static [KeySource],
    /// Whether spec.dashboard.decryption Server may be used. When false the dashboard pod gets
    /// no key material, no key-service endpoint and no route to it.
    pub dashboard_decryption_allowed: bool,
    /// NetworkPolicies that cut the dashboard off from the key service.
    pub isolate_dashboard_from_kms: bool,
    /// Where the dashboard's DynamoDB credentials come from: a static pair where DynamoDB is
    /// an emulator (and, in Local, the key service's pair), the AWS SDK's default chain
    /// (IRSA, EKS pod identity) where it is AWS.
    pub dashboard_credentials: CredentialSource,
    pub ttl_allowed: bool,
    pub mirror_allowed: bool,
    /// Other environments may copy this one's topology (spec.mirror.from).
    pub mirror_source: bool,
    /// Services may be NodePorts (kind extraPortMappings) when the operator is told so.
    pub node_ports_allowed: bool,
    /// `parity dev` may run the environment as local processes (process mode). Not where
    /// the data and keys are real (an external DynamoDB, AWS KMS).
    pub process_mode_allowed: bool,
}

const L0: Components = Components {
    keys: true,
    secrets: true,
    dynamodb: false,
    streams: false,
    dashboard: false,
    sdk_wire: false,
};
const L1: Components = Components {
    dynamodb: true,
    ..L0
};
const L2: Components = Components {
    streams: true,
    dashboard: true,
    ..L1
};
const L3: Components = Components {
    sdk_wire: true,
    ..L2
};

static LOCAL: TierProfile = TierProfile {
    tier: Tier::Local,
    levels: [L0, L1, L2, L3],
    dynamodb: DynamoPlacement::InCluster,
    default_persistence: PersistenceMode::Volume,
    key_providers: &[KeyProvider::Local, KeyProvider::Kms],
    key_sources: &[KeySource::Generated, KeySource::Seeded],
    dashboard_decryption_allowed: true,
    isolate_dashboard_from_kms: false,
    dashboard_credentials: CredentialSource::Static,
    ttl_allowed: false,
    mirror_allowed: true,
    mirror_source: false,
    node_ports_allowed: true,
    process_mode_allowed: true,
};

static CI: TierProfile = TierProfile {
    tier: Tier::Ci,
    levels: [L0, L1, L2, L3],
    dynamodb: DynamoPlacement::InCluster,
    default_persistence: PersistenceMode::InMemory,
    key_providers: &[KeyProvider::Local, KeyProvider::Kms],
    key_sources: &[KeySource::Generated, KeySource::Seeded],
    dashboard_decryption_allowed: false,
    isolate_dashboard_from_kms: true,
    dashboard_credentials: CredentialSource::Static,
    ttl_allowed: true,
    mirror_allowed: true,
    mirror_source: false,
    node_ports_allowed: false,
    process_mode_allowed: true,
};

static STAGING: TierProfile = TierProfile {
    tier: Tier::Staging,
    levels: [L0, L1, L2, L3],
    dynamodb: DynamoPlacement::External,
    default_persistence: PersistenceMode::InMemory,
    key_providers: &[KeyProvider::Kms],
    key_sources: &[],
    dashboard_decryption_allowed: false,
    isolate_dashboard_from_kms: true,
    dashboard_credentials: CredentialSource::DefaultChain,
    ttl_allowed: false,
    mirror_allowed: false,
    mirror_source: true,
    node_ports_allowed: false,
    process_mode_allowed: false,
};

/// THE table.
pub fn profile(tier: Tier) -> &'static TierProfile {
    match tier {
        Tier::Local => &LOCAL,
        Tier::Ci => &CI,
        Tier::Staging => &STAGING,
    }
}

impl TierProfile {
    /// Components at `level`, clamped to 0..=3.
    pub fn components(&self, level: i32) -> Components {
        self.levels[level.clamp(0, 3) as usize]
    }

    pub fn allows_key_provider(&self, p: KeyProvider) -> bool {
        self.key_providers.contains(&p)
    }

    pub fn allows_key_source(&self, s: KeySource) -> bool {
        self.key_sources.contains(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decryption_and_kms_route_only_in_local() {
        for tier in Tier::ALL {
            let p = profile(tier);
            assert_eq!(p.tier, tier);
            assert_eq!(p.dashboard_decryption_allowed, tier == Tier::Local);
            // Zero knowledge: wherever decryption is forbidden, the route is cut too.
            assert_eq!(
                p.isolate_dashboard_from_kms,
                !p.dashboard_decryption_allowed
            );
        }
    }

    #[test]
    fn levels_add_components_monotonically() {
        for tier in Tier::ALL {
            let p = profile(tier);
            let c = |l| p.components(l);
            assert!(c(0).keys && c(0).secrets && !c(0).dynamodb && !c(0).dashboard);
            assert!(c(1).dynamodb && !c(1).dashboard);
            assert!(c(2).dashboard && c(2).streams && !c(2).sdk_wire);
            assert!(c(3).sdk_wire);
            assert_eq!(c(7), c(3));
        }
    }

    #[test]
    fn only_staging_dashboards_use_the_sdk_credential_chain() {
        for tier in Tier::ALL {
            let p = profile(tier);
            // Static keys only where DynamoDB is an emulator in the cluster.
            assert_eq!(
                p.dashboard_credentials == CredentialSource::DefaultChain,
                p.dynamodb == DynamoPlacement::External,
                "{tier:?}"
            );
        }
        assert_eq!(
            profile(Tier::Staging).dashboard_credentials,
            CredentialSource::DefaultChain
        );
    }

    #[test]
    fn staging_uses_external_dynamodb_and_kms_only() {
        let p = profile(Tier::Staging);
        assert_eq!(p.dynamodb, DynamoPlacement::External);
        assert_eq!(p.key_providers, &[KeyProvider::Kms]);
        assert!(!p.ttl_allowed && !p.mirror_allowed);
        assert!(profile(Tier::Ci).ttl_allowed && !profile(Tier::Local).ttl_allowed);
    }
}
