//! OpenAPI schemas for the domain types, built from the same constants their parsers enforce,
//! so the document and the validation cannot drift apart (`openapi.json` is regenerated from
//! these, and a test fails when the committed copy is stale).

use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

/// A string schema with the given bounds.
pub fn string(min: Option<usize>, max: Option<usize>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(min)
        .max_length(max)
}

/// `schema`, also accepting `null` (an optional field that may be sent as `null`).
pub fn or_null(schema: ObjectBuilder) -> Object {
    schema
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .build()
}

pub fn with_format(schema: ObjectBuilder, format: KnownFormat) -> ObjectBuilder {
    schema.format(Some(SchemaFormat::KnownFormat(format)))
}
