/**
 * The contract between the API (/api) and its clients. Only zod schemas and
 * the types inferred from them live here, nothing that touches a database:
 * the server parses, serializes and documents with these schemas, and the
 * dashboard imports their types, so renaming a field breaks both builds.
 */
export * from './admin-api.schema.ts'
export * from './alerts-api.schema.ts'
export * from './filter.schema.ts'
export * from './member-api.schema.ts'
export * from './ops-api.schema.ts'
export * from './series-id.ts'
export * from './settings.schema.ts'
export * from './time-zone-name.ts'
export * from './usage-api.schema.ts'
