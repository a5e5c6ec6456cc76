//! `examples/plant.toml` (the annotated example that `millwright demo` runs) must always be
//! valid. Until that file is written this test has nothing to check and says so.

use std::path::Path;

#[test]
fn example_plant_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plant.toml");
    if !path.exists() {
        eprintln!(
            "note: {} does not exist yet; nothing to check",
            path.display()
        );
        return;
    }
    let config =
        mw_config::load(&path).unwrap_or_else(|d| panic!("examples/plant.toml is invalid:\n{d}"));
    assert!(
        !config.devices.is_empty(),
        "the example should configure at least one device"
    );
    assert!(
        config.devices.iter().all(|d| !d.tags.is_empty()),
        "every example device should have tags"
    );
    let tree = config.asset_tree();
    assert_eq!(
        tree.tag_count(),
        config.tags().count(),
        "every tag lands in the asset tree"
    );
}
