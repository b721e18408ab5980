package topics

// Exported for the external tests: the reference implementation and the
// fast validator's internals that they probe.
var (
	RefDecode       = refDecode
	RefValidateData = refValidateData
	SchemaPatterns  = schemaPatterns
	CompileSchema   = compileSchemaJSON
)
