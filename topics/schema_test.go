package topics_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shopstream/shopstream/topics"
)

// TestSchemaFilesCompile compiles every file under schemas/ on its own with a
// stock draft 2020-12 compiler and checks that there is exactly one per type
// and that the package embeds the same bytes.
func TestSchemaFilesCompile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("schemas", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		typ := strings.TrimSuffix(filepath.Base(f), ".json")
		names = append(names, typ)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, _ := doc.(map[string]any)
		if m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", f, m["$schema"])
		}
		if m["type"] != "object" {
			t.Errorf("%s: type = %v, want object", f, m["type"])
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(f, doc); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Compile(f); err != nil {
			t.Errorf("%s does not compile: %v", f, err)
		}
		embedded, ok := topics.SchemaJSON(typ)
		if !ok || !bytes.Equal(embedded, b) {
			t.Errorf("SchemaJSON(%s) = %v, differs from %s", typ, ok, f)
		}
	}
	var types []string
	for _, d := range topics.Domains() {
		types = append(types, topics.Types(d)...)
	}
	slices.Sort(types)
	if !slices.Equal(names, types) {
		t.Errorf("schema files %v, want one per type %v", names, types)
	}
	if _, ok := topics.SchemaJSON("../event"); ok {
		t.Error("SchemaJSON accepted an unknown type")
	}
}

// TestValidateDataExamples runs every example through the package's own
// compiled schemas (which also proves the embedded schemas compile).
func TestValidateDataExamples(t *testing.T) {
	for _, ex := range examples {
		if err := topics.ValidateData(ex.eventType, []byte(ex.data)); err != nil {
			t.Errorf("%s: %v", ex.eventType, err)
		}
	}
	if err := topics.ValidateData("nope", []byte(`{}`)); !topics.IsPoison(err) {
		t.Errorf("ValidateData(unknown type) = %v", err)
	}
	if err := topics.ValidateData(topics.TypeStockUpdated, []byte(`{`)); !topics.IsPoison(err) {
		t.Errorf("ValidateData(invalid JSON) = %v", err)
	}
}

// TestSchemasRejectMissingRequired removes, one at a time, each field a
// schema lists as required (at the top level and inside array items) from the
// type's valid example, and expects a poison error naming that field.
func TestSchemasRejectMissingRequired(t *testing.T) {
	for _, ex := range examples {
		raw, ok := topics.SchemaJSON(ex.eventType)
		if !ok {
			t.Fatalf("no schema for %s", ex.eventType)
		}
		var schema map[string]any
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Fatal(err)
		}
		checked := 0
		forEachRequired(schema, nil, func(path []string, field string) {
			checked++
			var payload any
			_ = json.Unmarshal([]byte(ex.data), &payload)
			parent := lookup(payload, path)
			obj, ok := parent.(map[string]any)
			if !ok {
				t.Fatalf("%s: example has no object at %v", ex.eventType, path)
			}
			delete(obj, field)
			name := strings.Join(append(append([]string{"data"}, path...), field), ".")
			err := topics.ValidateData(ex.eventType, marshal(t, payload))
			if !topics.IsPoison(err) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s without %s: got %v, want poison naming %s", ex.eventType, name, err, name)
			}
		})
		if checked == 0 {
			t.Errorf("%s: schema lists no required field", ex.eventType)
		}
	}
}

// forEachRequired calls f for every required field of schema, following
// "properties" and array "items" (as item 0).
func forEachRequired(schema map[string]any, path []string, f func(path []string, field string)) {
	req, _ := schema["required"].([]any)
	for _, r := range req {
		f(path, r.(string))
	}
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		ps, _ := p.(map[string]any)
		sub := append(slices.Clone(path), name)
		if ps["type"] == "object" {
			forEachRequired(ps, sub, f)
		}
		if items, ok := ps["items"].(map[string]any); ok && items["type"] == "object" {
			forEachRequired(items, append(sub, "0"), f)
		}
	}
}

func lookup(v any, path []string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			if p != "0" || len(x) == 0 {
				return nil
			}
			v = x[0]
		default:
			return nil
		}
	}
	return v
}
