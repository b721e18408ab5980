package charttest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// promExpr is one PromQL expression of the chart, parsed.
type promExpr struct {
	where string // "rule ShopstreamDeadLetters", "dashboard panel 4 target A"
	text  string
	expr  parser.Expr
}

var promParser = parser.NewParser(parser.Options{})

// grafanaIntervals are Grafana's interval variables, replaced by a duration
// before parsing.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// expectedAlerts are the alerts a PrometheusRule holds with the chart's
// default prometheusRule settings; ShopstreamNotRunning only when the
// Deployment never scales to zero.
func expectedAlerts(s scenario) []string {
	a := []string{"ShopstreamConsumerLagHigh", "ShopstreamConsumerTimeLagHigh", "ShopstreamGroupNoConsumers",
		"ShopstreamDeadLetters", "ShopstreamDLQWriteFailing", "ShopstreamGroupPaused", "ShopstreamPodNotReady", "ShopstreamTargetDown"}
	if s.minRep >= 1 {
		a = append(a, "ShopstreamNotRunning")
	}
	return sortedCopy(a)
}

// ruleExprs validates the PrometheusRule as `promtool check rules` does
// (Prometheus' rulefmt: expressions, durations, label names, annotation
// templates) and returns its expressions.
func ruleExprs(t testing.TB, s scenario, m *manifests) []promExpr {
	t.Helper()
	pr := m.PrometheusRule
	if pr == nil {
		return nil
	}
	js, err := json.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(y, false, model.LegacyValidation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("promtool-style check of the PrometheusRule: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var out []promExpr
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			alerts = append(alerts, r.Alert)
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("alert %s: severity %q", r.Alert, sev)
			}
			e, err := promParser.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
				continue
			}
			out = append(out, promExpr{where: "alert " + r.Alert, text: r.Expr, expr: e})
		}
	}
	if got := sortedCopy(alerts); !slices.Equal(got, expectedAlerts(s)) {
		t.Errorf("alerts = %v, want %v", got, expectedAlerts(s))
	}
	return out
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardExprs checks the dashboard's structure and returns every PromQL
// expression in it: panel targets and the selectors of its query variables.
func dashboardExprs(t testing.TB, raw string) []promExpr {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard without uid or title")
	}
	vars := map[string]bool{}
	var out []promExpr
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		q := v.Query
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		qs, _ := q.(string)
		mm := labelValuesRE.FindStringSubmatch(qs)
		if mm == nil {
			t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, qs)
			continue
		}
		e, err := promParser.ParseExpr(mm[1])
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		out = append(out, promExpr{where: "dashboard variable " + v.Name, text: mm[1], expr: e})
		out = append(out, promExpr{where: "dashboard variable " + v.Name + " (label)", text: fmt.Sprintf("group by (%s) (%s)", mm[2], mm[1]),
			expr: mustParse(t, fmt.Sprintf("group by (%s) (%s)", mm[2], mm[1]))})
	}
	for _, want := range []string{"datasource", "namespace", "group"} {
		if !vars[want] {
			t.Errorf("dashboard has no $%s variable", want)
		}
	}
	varRE := regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)
	ids := map[int]bool{}
	panels := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		panels++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want ${datasource}", p.Title, p.Datasource)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range varRE.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] && !strings.HasPrefix(m[1], "__") {
					t.Errorf("panel %q: $%s is no dashboard variable", p.Title, m[1])
				}
			}
			text := grafanaIntervals.Replace(tg.Expr)
			e, err := promParser.ParseExpr(text)
			if err != nil {
				t.Errorf("panel %q target %s: %v\n%s", p.Title, tg.RefID, err, text)
				continue
			}
			out = append(out, promExpr{where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), text: text, expr: e})
		}
	}
	if panels < 10 {
		t.Errorf("dashboard has %d panels", panels)
	}
	return out
}

func mustParse(t testing.TB, s string) parser.Expr {
	t.Helper()
	e, err := promParser.ParseExpr(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return e
}

// allExprs gathers every expression of every scenario that renders rules or
// a dashboard, plus the dashboard file itself.
func allExprs(t testing.TB) []promExpr {
	t.Helper()
	var out []promExpr
	for _, s := range scenarios {
		m := decodeScenario(t, s)
		out = append(out, ruleExprs(t, s, m)...)
		if m.Dashboard != nil {
			out = append(out, dashboardExprs(t, m.Dashboard.Data["shopstream.json"])...)
		}
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "shopstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, dashboardExprs(t, string(raw))...)
	return out
}

// Rules pass promtool's checks, each alert is documented, and the set of
// alerts is the expected one.
func TestPrometheusRules(t *testing.T) {
	seen := false
	for _, s := range scenarios {
		m := decodeScenario(t, s)
		if m.PrometheusRule == nil {
			continue
		}
		seen = true
		t.Run(s.String(), func(t *testing.T) {
			exprs := ruleExprs(t, s, m)
			// Every alert on shopstream's series is scoped to this release.
			scope := map[string]string{"namespace": namespace, "job": s.fullname}
			for _, e := range exprs {
				for _, vs := range selectors(e.expr) {
					name := metricName(vs)
					if !strings.HasPrefix(name, "shopstream_") && name != "up" {
						continue
					}
					for l, v := range scope {
						if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
							return m.Name == l && m.Type == labels.MatchEqual && m.Value == v
						}) {
							t.Errorf("%s: selector %s is not scoped with %s=%q", e.where, vs, l, v)
						}
					}
				}
				for _, d := range durations(e.expr) {
					if d <= 0 {
						t.Errorf("%s: a zero range", e.where)
					}
				}
			}
		})
	}
	if !seen {
		t.Fatal("no scenario renders a PrometheusRule")
	}
}

// The dashboard ConfigMap carries the sidecar's label and the chart's file.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "shopstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	dashboardExprs(t, string(raw))
	seen := false
	for _, s := range scenarios {
		m := decodeScenario(t, s)
		if m.Dashboard == nil {
			continue
		}
		seen = true
		if m.Dashboard.Labels["grafana_dashboard"] != "1" {
			t.Errorf("%s: dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", s, m.Dashboard.Labels)
		}
		if strings.TrimSpace(m.Dashboard.Data["shopstream.json"]) != strings.TrimSpace(string(raw)) {
			t.Errorf("%s: the ConfigMap's dashboard differs from dashboards/shopstream.json", s)
		}
	}
	if !seen {
		t.Fatal("no scenario renders the dashboard")
	}
}

// selectors returns every vector selector of e (inside matrix selectors and
// subqueries too).
func selectors(e parser.Node) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

func durations(e parser.Node) []time.Duration {
	var out []time.Duration
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.MatrixSelector:
			out = append(out, n.Range)
		case *parser.SubqueryExpr:
			out = append(out, n.Range)
		}
		return nil
	})
	return out
}

func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}
