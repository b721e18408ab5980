package topics

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaFiles holds one JSON Schema (draft 2020-12) per event type, named
// schemas/<type>.json.
//
//go:embed schemas/*.json
var schemaFiles embed.FS

// schemaBaseURL prefixes the $id of every schema.
const schemaBaseURL = "https://github.com/shopstream/shopstream/topics/schemas/"

// schemaSet is the compiled form of schemaFiles.
type schemaSet struct {
	byType  map[string]*jsonschema.Schema
	printer *message.Printer
}

// compiledSchemas compiles every schema on first use; the result is shared.
var compiledSchemas = sync.OnceValues(compileSchemas)

func compileSchemas() (*schemaSet, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// The two formats below keep "valid by schema" equal to "decodes into the
	// Go payload type": an int32 field must be an integer literal that fits,
	// and a double must not overflow float64. No other format is used.
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "int32", Validate: validateInt32})
	c.RegisterFormat(&jsonschema.Format{Name: "double", Validate: validateDouble})
	c.UseLoader(noLoader{})

	types := allTypes()
	for _, t := range types {
		b, err := schemaFiles.ReadFile("schemas/" + t + ".json")
		if err != nil {
			return nil, fmt.Errorf("topics: schema of %s: %w", t, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("topics: schema of %s: %w", t, err)
		}
		if err := c.AddResource(schemaBaseURL+t+".json", doc); err != nil {
			return nil, fmt.Errorf("topics: schema of %s: %w", t, err)
		}
	}
	set := &schemaSet{
		byType:  make(map[string]*jsonschema.Schema, len(types)),
		printer: message.NewPrinter(language.English),
	}
	for _, t := range types {
		sch, err := c.Compile(schemaBaseURL + t + ".json")
		if err != nil {
			return nil, fmt.Errorf("topics: compile schema of %s: %w", t, err)
		}
		set.byType[t] = sch
	}
	return set, nil
}

// noLoader refuses every URL: all schemas are embedded, and the metaschemas
// ship with the jsonschema library, so nothing is ever fetched.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("topics: schema %s is not embedded", url)
}

func validateInt32(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return nil // not a number: "type" reports it
	}
	if _, err := strconv.ParseInt(string(n), 10, 32); err != nil {
		return errors.New("want an int32 integer literal")
	}
	return nil
}

func validateDouble(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	if f, err := strconv.ParseFloat(string(n), 64); err != nil || math.IsInf(f, 0) {
		return errors.New("out of the float64 range")
	}
	return nil
}

// SchemaJSON returns the JSON Schema (draft 2020-12) of eventType's data as
// stored in the package, and false if eventType is unknown. The caller may
// modify the returned slice.
func SchemaJSON(eventType string) ([]byte, bool) {
	if _, ok := DomainOf(eventType); !ok {
		return nil, false
	}
	b, err := schemaFiles.ReadFile("schemas/" + eventType + ".json")
	return b, err == nil
}

// ValidateData checks data (a JSON document) against eventType's schema.
// It returns nil if data is valid, a *PoisonError naming the offending field
// if it is not (or if eventType is unknown), and a plain error only if the
// embedded schemas fail to compile, which the package tests rule out.
// ValidateData does not compare the key field with a subject; Decode does.
func ValidateData(eventType string, data []byte) error {
	if _, ok := DomainOf(eventType); !ok {
		return poisonf("type: %q is unknown", clip(eventType))
	}
	doc, err := decodeData(data)
	if err != nil {
		return err
	}
	return validateDoc(eventType, doc)
}

// decodeData parses data once into the generic form the validator needs,
// keeping numbers exact as json.Number.
func decodeData(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, poisonf("data: missing")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, poisonf("data: invalid JSON: %v", err)
	}
	if doc == nil {
		return nil, poisonf("data: is null")
	}
	return doc, nil
}

// validateDoc validates a parsed payload against eventType's schema.
func validateDoc(eventType string, doc any) error {
	set, err := compiledSchemas()
	if err != nil {
		return err
	}
	sch := set.byType[eventType]
	if sch == nil {
		return poisonf("type: %q is unknown", clip(eventType))
	}
	err = sch.Validate(doc)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return poisonf("data: %v", err)
	}
	return &PoisonError{Reason: set.reason(verr)}
}

// maxSchemaMessages bounds how many schema violations a reason lists.
const maxSchemaMessages = 3

// reason turns a validation error into a short, deterministic reason that
// names each offending field, such as
// `data.quantity: got string, want number` or `data.sku: required`.
func (s *schemaSet) reason(verr *jsonschema.ValidationError) string {
	var msgs []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := fieldPath(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				msgs = append(msgs, loc+"."+m+": required")
			}
		default:
			msgs = append(msgs, loc+": "+clip(e.ErrorKind.LocalizedString(s.printer)))
		}
	}
	walk(verr)
	if len(msgs) == 0 {
		return "data: fails schema"
	}
	slices.Sort(msgs)
	msgs = slices.Compact(msgs)
	if len(msgs) > maxSchemaMessages {
		msgs = append(msgs[:maxSchemaMessages], fmt.Sprintf("and %d more", len(msgs)-maxSchemaMessages))
	}
	return strings.Join(msgs, "; ")
}

// fieldPath renders an instance location inside data as data.a.0.b.
func fieldPath(loc []string) string {
	var sb strings.Builder
	sb.WriteString("data")
	for _, tok := range loc {
		sb.WriteByte('.')
		sb.WriteString(clip(tok))
	}
	return sb.String()
}

// maxReasonValue bounds how much of a record's own text a reason repeats.
const maxReasonValue = 64

// clip shortens s for use in a reason.
func clip(s string) string {
	if len(s) <= maxReasonValue {
		return s
	}
	// Cut on a rune boundary.
	i := maxReasonValue
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
