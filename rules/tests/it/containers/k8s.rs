//! The k8s target: snapshot, and `kubernetes-validate --strict` on the output.
use n2d_rules::k8s::K8sRule;

use super::fixtures;
use super::output::{kubernetes_validate, render_deployment};

#[test]
fn shop_manifests() {
    let (mut deployment, services, sources) = fixtures::shop();
    deployment.namespace = Some("shop".into());
    let output = render_deployment(&K8sRule, &deployment, &services, &sources);
    assert_eq!(
        output.paths(),
        ["api.yaml", "db.yaml", "kustomization.yaml", "migrate.yaml"]
    );
    for path in output.paths() {
        insta::assert_snapshot!(format!("containers_k8s_shop_{path}"), output.text(&path));
    }
    insta::assert_debug_snapshot!("containers_k8s_shop_warnings", output.warnings);
    kubernetes_validate(&[&output]);
}
