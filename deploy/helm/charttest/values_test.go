package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every value in values.yaml is documented with a "# --" comment
// (helm-docs style): a key is documented by its own comment, or it is a
// non-empty map whose every key is documented; the keys under a documented
// map are documented by it.
func TestEveryValueDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatal("values.yaml is not a mapping")
	}
	var undocumented []string
	var walk func(prefix string, m *yaml.Node) bool
	walk = func(prefix string, m *yaml.Node) bool {
		all := true
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			if strings.Contains(k.HeadComment, "# -- ") {
				continue
			}
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 && walk(key+".", v) {
				continue
			}
			if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
				undocumented = append(undocumented, key)
			}
			all = false
		}
		return all
	}
	walk("", doc.Content[0])
	for _, k := range undocumented {
		t.Errorf("values.yaml: %s has no \"# -- \" comment", k)
	}
}
