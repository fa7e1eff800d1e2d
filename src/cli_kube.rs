//! `recall kube render|denied`: the admission objects Recall would install, and what each
//! cluster denies now. Neither needs the incident database.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::cli::CliError;
use crate::config::Config;
use crate::k8s::policy::{self, Mode};

#[derive(Subcommand, Debug)]
pub enum KubeCmd {
    /// Print the objects a dialect installs, as YAML for review (`kubectl apply -f -` takes it).
    Render {
        /// validating-admission-policy, kyverno or sigstore-policy-controller.
        #[arg(long, default_value = "validating-admission-policy")]
        dialect: String,
        /// Namespace of the deny-list ConfigMaps (default: `[kube] namespace`).
        #[arg(long)]
        namespace: Option<String>,
        /// Pods only: leave the pod templates of workloads alone.
        #[arg(long)]
        no_workloads: bool,
    },
    /// What every configured cluster denies now, per mode, and for which incident.
    Denied {
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: &KubeCmd, config: &Config) -> Result<u8, CliError> {
    match cmd {
        KubeCmd::Render {
            dialect,
            namespace,
            no_workloads,
        } => {
            let ns = namespace.as_deref().unwrap_or(&config.kube.namespace);
            let docs = policy::render(dialect, ns, !no_workloads).map_err(CliError::Usage)?;
            print!("{}", policy::to_yaml(&docs));
            Ok(0)
        }
        KubeCmd::Denied { cluster, json } => {
            let list = crate::k8s::select(config, cluster.as_deref()).map_err(CliError::Usage)?;
            if list.is_empty() {
                return Err(CliError::Usage(crate::actions::kube::NO_CLUSTER.into()));
            }
            let mut rows: Vec<Value> = Vec::new();
            let mut failed = false;
            for c in list {
                match denied_in(config, c).await {
                    Ok(r) => rows.extend(r),
                    Err(e) => {
                        failed = true;
                        rows.push(json!({ "cluster": c.name, "error": e.to_string() }));
                    }
                }
            }
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                println!("{:<16} {:<8} {:<72} NOTE", "CLUSTER", "MODE", "DIGEST");
                for r in &rows {
                    if let Some(e) = r.get("error") {
                        println!(
                            "{:<16} error: {}",
                            r["cluster"].as_str().unwrap_or(""),
                            e.as_str().unwrap_or("")
                        );
                    } else {
                        println!(
                            "{:<16} {:<8} {:<72} {}",
                            r["cluster"].as_str().unwrap_or(""),
                            r["mode"].as_str().unwrap_or(""),
                            r["digest"].as_str().unwrap_or(""),
                            r["note"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}

async fn denied_in(
    config: &Config,
    c: &crate::config::ClusterConfig,
) -> Result<Vec<Value>, crate::k8s::K8sError> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let client = crate::k8s::client(config, c).await?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &config.kube.namespace);
    let mut out = Vec::new();
    for m in Mode::ALL {
        let op = crate::k8s::Op::new(&c.name, "get", "", "configmaps")
            .ns(&config.kube.namespace)
            .name(&m.configmap());
        let cm = api.get_opt(&m.configmap()).await.map_err(|e| op.err(e))?;
        for (k, note) in cm.and_then(|cm| cm.data).unwrap_or_default() {
            out.push(json!({
                "cluster": c.name,
                "mode": m.as_str(),
                "digest": policy::key_digest(&k).unwrap_or(k),
                "note": note,
            }));
        }
    }
    Ok(out)
}
