//! The `json` target: each resolved service as canonical, pretty JSON, one
//! file per service, plus `deployment.json` listing them. A debugging target:
//! it shows exactly what every other renderer receives, and the engine's
//! tests use it because it has no external consumer to install.
use n2d_modules::service::Service;
use n2d_modules::{LocalEnv, TargetEnv};

use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};

/// The `json` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Rule for Json {
    fn target(&self) -> &'static str {
        "json"
    }

    fn version(&self) -> u32 {
        1
    }

    fn env(&self) -> &dyn TargetEnv {
        &LocalEnv
    }

    fn options(&self) -> &'static str {
        ""
    }

    fn source_inputs(&self, _service: &Service) -> Vec<String> {
        // The json target writes the resolved value only; it reads no sources.
        Vec::new()
    }

    fn render(
        &self,
        _deployment: &Deployment,
        service: &Service,
        _sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        // serde_json without `preserve_order` sorts object keys, so the text
        // is canonical: the same service always gives the same bytes.
        let value = serde_json::to_value(service).expect("a service always serializes");
        let mut bytes = serde_json::to_vec_pretty(&value).expect("a JSON value always serializes");
        bytes.push(b'\n');
        Ok(Rendered {
            artifacts: vec![Artifact {
                path: format!("services/{}.json", service.name),
                bytes,
                mode: 0o644,
            }],
            fragment: serde_json::json!({ "label": service.label }),
            warnings: Vec::new(),
        })
    }

    fn assemble(
        &self,
        deployment: &Deployment,
        fragments: &[(&str, &serde_json::Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let services: serde_json::Map<String, serde_json::Value> = fragments
            .iter()
            .map(|(name, fragment)| {
                let label = fragment
                    .get("label")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                (
                    name.to_string(),
                    serde_json::json!({ "label": label, "file": format!("services/{name}.json") }),
                )
            })
            .collect();
        let value = serde_json::json!({
            "package": deployment.package,
            "deployment": deployment.name,
            "namespace": deployment.namespace,
            "services": services,
        });
        let mut bytes = serde_json::to_vec_pretty(&value).expect("a JSON value always serializes");
        bytes.push(b'\n');
        Ok(vec![Artifact {
            path: "deployment.json".into(),
            bytes,
            mode: 0o644,
        }])
    }
}
