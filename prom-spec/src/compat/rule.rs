//! Stable rule identifiers attached to every finding.

use std::fmt;

macro_rules! rules {
    ($( $(#[doc = $doc:literal])+ $variant:ident => $id:literal, )+) => {
        /// Stable identifier of a compatibility rule (kebab-case via `as_str`, `Display` and serde).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Rule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),+];

            /// The stable kebab-case id.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)+
                }
            }

            /// Looks a rule up by its kebab-case id.
            pub fn from_id(id: &str) -> Option<Rule> {
                match id {
                    $($id => Some(Rule::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

rules! {
    /// The new schema accepts none of the JSON types the other side may produce.
    TypeChanged => "type-changed",
    /// Backward: the new schema drops a JSON type (or number → integer) that old data may have.
    TypeNarrowed => "type-narrowed",
    /// Forward: the new schema adds a JSON type (or integer → number) old readers reject.
    TypeWidened => "type-widened",
    /// Backward: a property became required; old data may lack it.
    RequiredAdded => "required-added",
    /// Forward: a required property is no longer required; old readers need it.
    RequiredRemoved => "required-removed",
    /// Backward: a constrained property was added while the old model was open, so old data may carry that name with any value.
    PropertyAddedOpenModel => "property-added-open-model",
    /// Forward: a constrained property was removed while the new model is open, so new data may carry that name with any value.
    PropertyRemovedOpenModel => "property-removed-open-model",
    /// Backward: a property old data may carry was removed from a closed model (`additionalProperties: false`).
    PropertyRemovedClosedModel => "property-removed-closed-model",
    /// Forward: a property was added that the old closed model (`additionalProperties: false`) rejects.
    PropertyAddedClosedModel => "property-added-closed-model",
    /// Backward: `additionalProperties` now rejects undeclared properties old data may carry.
    AdditionalPropertiesNarrowed => "additional-properties-narrowed",
    /// Forward: `additionalProperties` now admits undeclared properties old readers reject.
    AdditionalPropertiesWidened => "additional-properties-widened",
    /// `patternProperties` differ in a way the checker cannot compare.
    PatternPropertiesChanged => "pattern-properties-changed",
    /// `propertyNames` differ.
    PropertyNamesChanged => "property-names-changed",
    /// `dependentRequired` (or array-valued `dependencies`) differ.
    DependentRequiredChanged => "dependent-required-changed",
    /// Backward: `minProperties` raised.
    MinPropertiesRaised => "min-properties-raised",
    /// Forward: `minProperties` lowered.
    MinPropertiesLowered => "min-properties-lowered",
    /// Backward: `maxProperties` lowered.
    MaxPropertiesLowered => "max-properties-lowered",
    /// Forward: `maxProperties` raised.
    MaxPropertiesRaised => "max-properties-raised",
    /// Backward: an enumerated value of the old schema is no longer accepted.
    EnumNarrowed => "enum-narrowed",
    /// Forward: the new schema enumerates a value old readers reject.
    EnumWidened => "enum-widened",
    /// Backward: the new schema restricts to an `enum` the old schema did not have.
    EnumAdded => "enum-added",
    /// Forward: the new schema dropped an `enum` restriction old readers rely on.
    EnumRemoved => "enum-removed",
    /// The `const` value differs between old and new.
    ConstChanged => "const-changed",
    /// Backward: the new schema pins the value with `const`.
    ConstAdded => "const-added",
    /// Forward: the new schema dropped a `const` old readers rely on.
    ConstRemoved => "const-removed",
    /// Backward: `minimum` raised (or added).
    MinimumRaised => "minimum-raised",
    /// Forward: `minimum` lowered (or removed).
    MinimumLowered => "minimum-lowered",
    /// Backward: `maximum` lowered (or added).
    MaximumLowered => "maximum-lowered",
    /// Forward: `maximum` raised (or removed).
    MaximumRaised => "maximum-raised",
    /// Backward: `exclusiveMinimum` raised (or added).
    ExclusiveMinimumRaised => "exclusive-minimum-raised",
    /// Forward: `exclusiveMinimum` lowered (or removed).
    ExclusiveMinimumLowered => "exclusive-minimum-lowered",
    /// Backward: `exclusiveMaximum` lowered (or added).
    ExclusiveMaximumLowered => "exclusive-maximum-lowered",
    /// Forward: `exclusiveMaximum` raised (or removed).
    ExclusiveMaximumRaised => "exclusive-maximum-raised",
    /// `multipleOf` changed so that some producible number is no longer a multiple.
    MultipleOfChanged => "multiple-of-changed",
    /// Backward: `minLength` raised.
    MinLengthRaised => "min-length-raised",
    /// Forward: `minLength` lowered.
    MinLengthLowered => "min-length-lowered",
    /// Backward: `maxLength` lowered.
    MaxLengthLowered => "max-length-lowered",
    /// Forward: `maxLength` raised.
    MaxLengthRaised => "max-length-raised",
    /// Backward: a `pattern` was added.
    PatternAdded => "pattern-added",
    /// Forward: a `pattern` was removed.
    PatternRemoved => "pattern-removed",
    /// The `pattern` changed.
    PatternChanged => "pattern-changed",
    /// Backward: a `format` was added.
    FormatAdded => "format-added",
    /// Forward: a `format` was removed.
    FormatRemoved => "format-removed",
    /// The `format` changed.
    FormatChanged => "format-changed",
    /// Backward: `minItems` raised.
    MinItemsRaised => "min-items-raised",
    /// Forward: `minItems` lowered.
    MinItemsLowered => "min-items-lowered",
    /// Backward: `maxItems` lowered.
    MaxItemsLowered => "max-items-lowered",
    /// Forward: `maxItems` raised.
    MaxItemsRaised => "max-items-raised",
    /// Backward: `uniqueItems` added.
    UniqueItemsAdded => "unique-items-added",
    /// Forward: `uniqueItems` removed.
    UniqueItemsRemoved => "unique-items-removed",
    /// Backward: items beyond the tuple prefix are now rejected (`items`/`additionalItems: false`).
    AdditionalItemsNarrowed => "additional-items-narrowed",
    /// Forward: items beyond the old tuple prefix are now produced.
    AdditionalItemsWidened => "additional-items-widened",
    /// `contains` (or `minContains`/`maxContains`) differ.
    ContainsChanged => "contains-changed",
    /// Backward: no branch of the new `anyOf` admits a type old data may have.
    AnyOfBranchRemoved => "any-of-branch-removed",
    /// Forward: the new schema admits a type no branch of the old `anyOf` admits.
    AnyOfBranchAdded => "any-of-branch-added",
    /// No single `anyOf` branch contains the data and the branches overlap, so coverage is unknown.
    AnyOfAmbiguous => "any-of-ambiguous",
    /// Backward: no branch of the new `oneOf` admits a type old data may have.
    OneOfBranchRemoved => "one-of-branch-removed",
    /// Forward: the new schema admits a type no branch of the old `oneOf` admits.
    OneOfBranchAdded => "one-of-branch-added",
    /// Data may match several `oneOf` branches (proven) or disjointness cannot be shown.
    OneOfAmbiguous => "one-of-ambiguous",
    /// A `not` constraint rejects producible data, or its effect cannot be decided.
    NotChanged => "not-changed",
    /// An enumerated value is rejected by a keyword with no more specific rule.
    ValueRejected => "value-rejected",
    /// A `$ref` points outside the document, so its target cannot be compared.
    RefUnresolved => "ref-unresolved",
    /// An unsupported or unknown keyword constrains the reader and the writer does not carry it identically.
    UnknownKeyword => "unknown-keyword",
    /// The comparison exceeded the depth or work budget and stopped.
    ComplexityLimit => "complexity-limit",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Rule::from_id(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown rule id `{id}`")))
    }
}
