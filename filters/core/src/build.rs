//! What build this is: the release version (the workspace's, one for every module) and the
//! source revision, for the `llmobs_build_info{module,version,revision}` gauge and
//! `llmobs version`.

/// The release version, `[workspace.package] version` (CHANGELOG.md).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short git revision `scripts/build` passes in `LLMOBS_REVISION` (`git rev-parse --short
/// HEAD`, with `-dirty` for uncommitted changes); `unknown` for a build outside it (plain
/// `cargo build`, or no git).
pub const REVISION: &str = match option_env!("LLMOBS_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// `llmobs.build_info{module,version,revision}`, set to 1 by every module once its VM is
/// configured: which release and revision each proxy runs, per module (`llmobs_pii_redaction`).
pub fn info_metric(module: &str) -> String {
    crate::metric::name("llmobs.build_info", &[("module", module), ("version", VERSION), ("revision", REVISION)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_info_name_carries_module_version_and_revision_as_labels() {
        let name = info_metric("llmobs_bundle");
        assert_eq!(name, format!("llmobs.build_info.module=llmobs_bundle;.version={VERSION};.revision={REVISION};"));
        assert!(VERSION.split('.').count() == 3 && !REVISION.is_empty());
    }
}
