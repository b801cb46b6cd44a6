//! The stable lint codes. Codes never change meaning; retired codes are never reused.

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = ($id:literal, $name:literal),)*) => {
        /// A stable lint rule identifier.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in id order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable id, such as `P101`.
            pub fn id(self) -> &'static str {
                match self { $(Code::$variant => $id,)* }
            }

            /// The stable kebab-case rule name, such as `topic-name`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// One-line description of the rule.
            pub fn description(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc),*).trim_ascii(),)* }
            }
        }
    };
}

codes! {
    /// The file is not valid YAML (or JSON, for a referenced schema).
    YamlSyntax = ("P001", "yaml-syntax"),
    /// A mapping repeats a key.
    DuplicateKey = ("P002", "duplicate-key"),
    /// A key the spec format does not define (usually a typo).
    UnknownKey = ("P003", "unknown-key"),
    /// A value has the wrong YAML type (e.g. a string where a mapping belongs).
    WrongType = ("P004", "wrong-type"),
    /// A required key is missing.
    MissingKey = ("P005", "missing-key"),
    /// An enum-like value (`compat`, `from`, `kind`, ...) is not one of its allowed values.
    InvalidValue = ("P006", "invalid-value"),
    /// A file or `$ref` target cannot be read.
    Io = ("P007", "io"),
    /// A duration is not written as `<integer><ms|s|m|h|d>`.
    InvalidDuration = ("P008", "invalid-duration"),
    /// A topic, consumer, projector or changefeed is declared twice.
    DuplicateDefinition = ("P009", "duplicate-definition"),
    /// A YAML feature the spec format does not accept (tags, several documents, complex keys).
    UnsupportedYaml = ("P010", "unsupported-yaml"),
    /// A directory below a spec directory links back to one already read (read once only).
    SymlinkLoop = ("P011", "symlink-loop"),
    /// A `$ref` leaves the spec directory (absolute path, `..` or a symlink pointing outside).
    RefOutsideRoot = ("P012", "ref-outside-root"),
    /// A topic name breaks `^[a-z0-9]+(\.[a-z0-9]+)*(\.v\d+)?$`.
    TopicName = ("P101", "topic-name"),
    /// A custom header name breaks `^x-[a-z0-9-]+$`.
    HeaderName = ("P102", "header-name"),
    /// A consumer, projector or changefeed name is not lowercase kebab-case.
    EntityName = ("P103", "entity-name"),
    /// Versions are not the integers 1, 2, 3, ... without gaps.
    VersionNumbering = ("P201", "version-numbering"),
    /// A version change breaks the topic's `compat` mode and has no `upcast` block.
    IncompatibleChange = ("P202", "incompatible-change"),
    /// The compatibility checker cannot decide a version change.
    CompatUndecided = ("P203", "compat-undecided"),
    /// An upcast step names a field the source version does not have.
    UpcastUnknownField = ("P204", "upcast-unknown-field"),
    /// A `set_default` value does not fit the target field's schema.
    UpcastDefaultType = ("P205", "upcast-default-type"),
    /// The upcast output does not satisfy the target version's schema.
    UpcastOutput = ("P206", "upcast-output"),
    /// An `upcast` block where none can apply (version 1) or with conflicting steps.
    UpcastMisplaced = ("P207", "upcast-misplaced"),
    /// A version without an `upcast` block whose predecessor's payloads are not valid under it
    /// (readers move fields across unchanged), whatever the topic's `compat` mode says.
    UpcastMissing = ("P208", "upcast-missing"),
    /// A consumer, projector or changefeed names a topic that is not declared.
    UnknownTopic = ("P301", "unknown-topic"),
    /// A key or version JSON pointer does not exist in the topic's schema.
    KeyPointer = ("P302", "key-pointer"),
    /// A dual-written `topic.vN` collides with a declared topic.
    DualWriteCollision = ("P303", "dual-write-collision"),
    /// A snapshot filter or index names a field the topic's schema does not have.
    UnknownField = ("P304", "unknown-field"),
    /// A projector misses what its kind needs, or has what it cannot use.
    ProjectorKindMismatch = ("P305", "projector-kind"),
    /// A topic name is reserved for topics the runtime derives (`dlq.<topic>`, `<topic>.v<N>`).
    ReservedName = ("P306", "reserved-name"),
    /// A number is outside its allowed range (e.g. `partitions: 0`).
    OutOfRange = ("P401", "out-of-range"),
    /// A payload schema is not a valid JSON Schema.
    InvalidSchema = ("P501", "invalid-schema"),
    /// A payload schema's root is not `type: object`.
    SchemaRootNotObject = ("P502", "schema-root-not-object"),
    /// An aggregate name is not lowercase snake_case (`^[a-z][a-z0-9_]*$`).
    AggregateName = ("P601", "aggregate-name"),
    /// An aggregate lists an event topic that is not declared.
    AggregateUnknownEvent = ("P602", "aggregate-unknown-event"),
    /// An aggregate's `id` pointer is not a required string or integer in every event's latest schema.
    AggregateId = ("P603", "aggregate-id"),
    /// A topic is an event of two aggregates.
    AggregateSharedEvent = ("P604", "aggregate-shared-event"),
    /// An aggregate lists no events, or one event twice.
    AggregateEvents = ("P605", "aggregate-events"),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
