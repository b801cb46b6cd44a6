//! The plain choices a spec makes (compat mode, where a group starts, change-stream modes):
//! one definition shared by the spec model, generated code and the runtime's facts, available
//! without the `lint` feature.

/// Compatibility mode between payload versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "lint", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "format-schema", derive(serde::Deserialize, schemars::JsonSchema), schemars(inline))]
pub enum CompatMode {
    /// No checks.
    None,
    /// New readers read the previous version's data.
    Backward,
    /// Previous readers read the new version's data.
    Forward,
    /// Both.
    Full,
    /// Backward against every earlier version.
    BackwardTransitive,
    /// Forward against every earlier version.
    ForwardTransitive,
    /// Full against every earlier version.
    FullTransitive,
}

impl CompatMode {
    /// The spec spelling of the mode (`backward_transitive`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CompatMode::None => "none",
            CompatMode::Backward => "backward",
            CompatMode::Forward => "forward",
            CompatMode::Full => "full",
            CompatMode::BackwardTransitive => "backward_transitive",
            CompatMode::ForwardTransitive => "forward_transitive",
            CompatMode::FullTransitive => "full_transitive",
        }
    }
}

/// Where a consumer group starts when it has no cursor yet (default: the earliest event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "format-schema",
    derive(serde::Deserialize, schemars::JsonSchema),
    serde(rename_all = "snake_case"),
    schemars(inline)
)]
pub enum StartFrom {
    /// From the first retained event.
    #[default]
    Earliest,
    /// After the newest event present when the group starts.
    Latest,
}

/// `fullDocument` mode of a change stream (default: `updateLookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "format-schema",
    derive(serde::Deserialize, schemars::JsonSchema),
    serde(rename_all = "camelCase"),
    schemars(inline)
)]
pub enum FullDocument {
    /// Only the delta for updates.
    Default,
    /// Look the current document up for updates.
    #[default]
    UpdateLookup,
    /// Post-image when available.
    WhenAvailable,
    /// Post-image or fail.
    Required,
}

/// What a changefeed does when its resume point has left the oplog (default: fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "format-schema",
    derive(serde::Deserialize, schemars::JsonSchema),
    serde(rename_all = "snake_case"),
    schemars(inline)
)]
pub enum LostResumePolicy {
    /// Stop with an error naming the lost token.
    #[default]
    Fail,
    /// Start from now and record the gap.
    RestartFromNow,
}
