package topics

// This file keeps the original, obviously-correct implementation of Decode and
// ValidateData: encoding/json for the envelope and the santhosh-tekuri
// jsonschema validator (draft 2020-12, formats asserted) for data. It is the
// reference that the differential tests and FuzzDecodeMatchesSchema hold the
// fast path to; it is not used at run time.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// refWireEvent is the envelope as read from a record. Optional attributes are
// pointers or raw values so that "absent", "null" and "wrong type" can be told
// apart.
type refWireEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            *string         `json:"time"`
	Version         json.RawMessage `json:"version"`
	DataContentType *string         `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// refDecode is the reference Decode.
func refDecode(d Domain, key, value []byte) (*Event, error) {
	di := info(d)
	if di == nil {
		return nil, fmt.Errorf("topics: Decode: unknown domain %q", string(d))
	}

	var w refWireEvent
	if err := json.Unmarshal(value, &w); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, poisonf("invalid JSON: %v", err)
		}
		if te.Field == "" || !refIsObject(value) {
			return nil, poisonf("not a JSON object: got %s", te.Value)
		}
		return nil, poisonf("%s: got %s, want string", te.Field, te.Value)
	}
	if !refIsObject(value) {
		return nil, poisonf("not a JSON object: got null")
	}

	if w.SpecVersion != SpecVersion {
		if w.SpecVersion == "" {
			return nil, poisonf("specversion: missing")
		}
		return nil, poisonf("specversion: got %q, want %q", clip(w.SpecVersion), SpecVersion)
	}
	switch {
	case w.ID == "":
		return nil, poisonf("id: missing or empty")
	case w.Source == "":
		return nil, poisonf("source: missing or empty")
	case w.Type == "":
		return nil, poisonf("type: missing or empty")
	case w.Subject == "":
		return nil, poisonf("subject: missing or empty")
	}
	td, ok := DomainOf(w.Type)
	if !ok {
		return nil, poisonf("type: %q is unknown", clip(w.Type))
	}
	if td != d {
		return nil, poisonf("type: %q belongs to domain %s, not %s", w.Type, td, d)
	}
	if len(key) > 0 && string(key) != w.Subject {
		return nil, poisonf("key: record key %q differs from subject %q", clip(string(key)), clip(w.Subject))
	}

	ev := &Event{
		SpecVersion: w.SpecVersion,
		ID:          w.ID,
		Source:      w.Source,
		Type:        w.Type,
		Subject:     w.Subject,
		Data:        w.Data,
		Raw:         value,
	}
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339, *w.Time)
		if err != nil {
			return nil, poisonf("time: %q is not RFC 3339", clip(*w.Time))
		}
		ev.Time = t
	}

	v, present, err := refParseVersion(w.Version)
	if err != nil {
		return nil, err
	}
	if !present && di.versionRequired {
		return nil, poisonf("version: missing (required on %s events)", d)
	}
	ev.Version = v

	if w.DataContentType != nil {
		if !isJSONContentType(*w.DataContentType) {
			return nil, poisonf("datacontenttype: got %q, want application/json", clip(*w.DataContentType))
		}
		ev.DataContentType = *w.DataContentType
	}

	if len(w.Data) == 0 {
		return nil, poisonf("data: missing")
	}
	if string(w.Data) == "null" {
		return nil, poisonf("data: is null")
	}
	doc, err := refDecodeData(w.Data)
	if err != nil {
		return nil, err
	}
	if err := refValidateDoc(w.Type, doc); err != nil {
		return nil, err
	}
	// The schema guarantees an object whose key field is a string.
	obj, _ := doc.(map[string]any)
	if k, _ := obj[di.keyField].(string); k != w.Subject {
		return nil, poisonf("data.%s: %q differs from subject %q", di.keyField, clip(k), clip(w.Subject))
	}
	return ev, nil
}

// allTypes lists every event type, domain by domain.
func allTypes() []string {
	var ts []string
	for _, d := range Domains() {
		ts = append(ts, info(d).types...)
	}
	return ts
}

// refIsObject reports whether the first non-space byte of a JSON text is '{'.
func refIsObject(value []byte) bool {
	v := bytes.TrimLeft(value, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

// refParseVersion reads the version attribute: absent or null, or an integer
// literal >= 1 that fits int64. A float, exponent or string is poison.
func refParseVersion(raw json.RawMessage) (v int64, present bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	v, perr := strconv.ParseInt(string(raw), 10, 64)
	if perr != nil {
		return 0, true, poisonf("version: got %s, want an integer", clip(string(raw)))
	}
	if v < 1 {
		return 0, true, poisonf("version: got %d, want >= 1", v)
	}
	return v, true, nil
}

// refSchemaSet is the compiled form of schemaFiles.
type refSchemaSet struct {
	byType  map[string]*jsonschema.Schema
	printer *message.Printer
}

// refCompiledSchemas compiles every schema on first use; the result is shared.
var refCompiledSchemas = sync.OnceValues(refCompileSchemas)

func refCompileSchemas() (*refSchemaSet, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// The two formats below keep "valid by schema" equal to "decodes into the
	// Go payload type": an int32 field must be an integer literal that fits,
	// and a double must not overflow float64. No other format is used.
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "int32", Validate: refValidateInt32})
	c.RegisterFormat(&jsonschema.Format{Name: "double", Validate: refValidateDouble})
	c.UseLoader(refNoLoader{})

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
	set := &refSchemaSet{
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

// schemaBaseURL prefixes the $id of every schema.
const schemaBaseURL = "https://github.com/shopstream/shopstream/topics/schemas/"

// refNoLoader refuses every URL: all schemas are embedded, and the metaschemas
// ship with the jsonschema library, so nothing is ever fetched.
type refNoLoader struct{}

func (refNoLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("topics: schema %s is not embedded", url)
}

func refValidateInt32(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return nil // not a number: "type" reports it
	}
	if _, err := strconv.ParseInt(string(n), 10, 32); err != nil {
		return errors.New("want an int32 integer literal")
	}
	return nil
}

func refValidateDouble(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	if f, err := strconv.ParseFloat(string(n), 64); err != nil || math.IsInf(f, 0) {
		return errors.New("out of the float64 range")
	}
	return nil
}

// refValidateData is the reference ValidateData.
func refValidateData(eventType string, data []byte) error {
	if _, ok := DomainOf(eventType); !ok {
		return poisonf("type: %q is unknown", clip(eventType))
	}
	doc, err := refDecodeData(data)
	if err != nil {
		return err
	}
	return refValidateDoc(eventType, doc)
}

// refDecodeData parses data once into the generic form the validator needs,
// keeping numbers exact as json.Number.
func refDecodeData(data []byte) (any, error) {
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

// refValidateDoc validates a parsed payload against eventType's schema.
func refValidateDoc(eventType string, doc any) error {
	set, err := refCompiledSchemas()
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

// reason turns a validation error into a short, deterministic reason that
// names each offending field, such as
// `data.quantity: got string, want number` or `data.sku: required`.
func (s *refSchemaSet) reason(verr *jsonschema.ValidationError) string {
	var msgs []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := refFieldPath(e.InstanceLocation)
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

// refFieldPath renders an instance location inside data as data.a.0.b.
func refFieldPath(loc []string) string {
	var sb strings.Builder
	sb.WriteString("data")
	for _, tok := range loc {
		sb.WriteByte('.')
		sb.WriteString(clip(tok))
	}
	return sb.String()
}
