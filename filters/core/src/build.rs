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
