//! Every config shipped in `config/` is valid.

use carbonwatch::config::Config;

#[test]
fn shipped_configs_validate() {
    let mut seen = 0;
    for dir in ["config", "config/bench"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!c.router.rules.is_empty(), "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "found {seen} configs");
    let crelay = Config::load_as(
        std::path::Path::new("config/carbon-c-relay.conf"),
        carbonwatch::config::ConfigFormat::CarbonCRelay,
    )
    .unwrap_or_else(|e| panic!("config/carbon-c-relay.conf: {e}"));
    assert_eq!(crelay.router.rules.len(), 5);
    assert!(crelay.router.cleanse && crelay.router.validates);
    let security = Config::load(std::path::Path::new("config/security-checks.toml")).unwrap();
    assert_eq!(security.checks.len(), 10);
    assert!(security.checks.iter().all(|c| c.live && c.enabled));
}
