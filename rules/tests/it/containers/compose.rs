//! The compose target: snapshot, and `docker-compose config` on the output.
use n2d_rules::compose::ComposeRule;

use super::fixtures;
use super::output::{docker_compose_config, render_deployment};

#[test]
fn shop_compose_file() {
    let (deployment, services, sources) = fixtures::shop();
    let output = render_deployment(&ComposeRule, &deployment, &services, &sources);
    insta::assert_snapshot!("containers_compose_shop", output.text("compose.yaml"));
    insta::assert_debug_snapshot!("containers_compose_shop_warnings", output.warnings);
    docker_compose_config(&output);
}
