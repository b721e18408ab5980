package charttest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/processor"
)

// yamlKeys returns the yaml keys of the named struct types in a Go file.
func yamlKeys(t *testing.T, file string, types ...string) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || !slices.Contains(types, ts.Name.Name) {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		for _, fld := range st.Fields.List {
			if fld.Tag == nil {
				continue
			}
			tag, err := strconv.Unquote(fld.Tag.Value)
			if err != nil {
				t.Fatal(err)
			}
			if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("yaml"), ","); name != "" && name != "-" {
				out[ts.Name.Name] = append(out[ts.Name.Name], name)
			}
		}
		return true
	})
	for _, ty := range types {
		if len(out[ty]) == 0 {
			t.Fatalf("%s: no struct %s with yaml tags", file, ty)
		}
	}
	return out
}

// The chart can set every key of the binary's topology file: the keys of
// cmd/shopstream/config.go's topology and groupSettings (and
// processor.RetryPolicy) all appear in some scenario's rendered topology.
// When the binary gains a key, this fails until the chart exposes it.
func TestChartCoversTopologyKeys(t *testing.T) {
	keys := yamlKeys(t, filepath.Join(repoRoot, "cmd", "shopstream", "config.go"), "topology", "groupSettings")
	var retry []string
	rt := reflect.TypeFor[processor.RetryPolicy]()
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			retry = append(retry, name)
		}
	}
	top, group, retryGot := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range scenarios {
		_, tp := topologyOf(t, decodeScenario(t, s))
		for k := range tp {
			top[k] = true
		}
		for _, g := range tp["groups"].(map[string]any) {
			for k, v := range g.(map[string]any) {
				group[k] = true
				if k == "retry" {
					for rk := range v.(map[string]any) {
						retryGot[rk] = true
					}
				}
			}
		}
	}
	for _, c := range []struct {
		what string
		want []string
		got  map[string]bool
	}{{"topology", keys["topology"], top}, {"groups.<name>", keys["groupSettings"], group}, {"groups.<name>.retry", retry, retryGot}} {
		for _, k := range c.want {
			if !c.got[k] {
				t.Errorf("%s.%s: the binary reads it, but no scenario's rendered topology sets it; expose it in the chart (and a ci/ scenario)", c.what, k)
			}
		}
		for k := range c.got {
			if !slices.Contains(c.want, k) {
				t.Errorf("%s.%s: rendered, but the binary has no such key", c.what, k)
			}
		}
	}
}
