package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/factorywire/factorywire/internal/demo"
)

// pending are metrics the dashboard shows before any binary exports them:
// each comes with another change of issue 14. Once it is exported, this
// test fails until it is removed from here.
var pending = map[string]string{}

// query is one PromQL expression of a dashboard and where it is.
type query struct{ where, expr string }

// queries returns every PromQL expression of a Grafana dashboard: each
// panel target's expr, and each query variable's query (label_values(m,
// l) as m).
func queries(data []byte) ([]query, error) {
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		return nil, err
	}
	var out []query
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = "panel " + strconvQuote(title)
			}
			if expr, ok := v["expr"].(string); ok {
				out = append(out, query{where, expr})
			}
			for k, sub := range v {
				if k != "templating" {
					walk(sub, where)
				}
			}
		case []any:
			for _, sub := range v {
				walk(sub, where)
			}
		}
	}
	walk(dash["panels"], "")
	templating, _ := dash["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		q, ok := v["query"].(string)
		if m, isMap := v["query"].(map[string]any); isMap {
			q, ok = m["query"].(string)
		}
		if !ok {
			return nil, fmt.Errorf("variable %v: no query", v["name"])
		}
		where := fmt.Sprintf("variable %v", v["name"])
		if m := labelValues.FindStringSubmatch(q); m != nil {
			if m[1] != "" {
				out = append(out, query{where, m[1]})
			}
			continue
		}
		out = append(out, query{where, q})
	}
	return out, nil
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// labelValues matches Grafana's label_values(metric, label) and
// label_values(label).
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+),)?\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// PromQL words that are not metric names: aggregation operators (which
// may take "by (...)" before their parentheses), binary operators,
// modifiers and literals. After a grouping word the label list in
// parentheses is skipped.
var (
	notMetrics = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
		"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true, "limitk": true, "limit_ratio": true,
		"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true, "start": true, "end": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true,
	}
	grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// metricNames returns the metric names expr selects, in order: the
// identifiers that are not functions (followed by "("), PromQL words, or
// labels (inside {...} or a grouping's parentheses). Strings, range and
// subquery brackets, numbers, durations and Grafana variables ($x, ${x})
// are skipped.
func metricNames(expr string) []string {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			i = skipPast(s, i, '}')
		case c == '[':
			i = skipPast(s, i, ']')
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				i = skipPast(s, i, '}')
				continue
			}
			for i < len(s) && isIdent(s[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			switch {
			case grouping[word]:
				if k < len(s) && s[k] == '(' {
					j = skipPast(s, k, ')')
				}
			case notMetrics[word], k < len(s) && s[k] == '(':
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// skipPast returns the index after the first close at or after i.
func skipPast(s string, i int, close byte) int {
	if j := strings.IndexByte(s[i:], close); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// exported is what the binaries export: every metric name (by component)
// and which are histograms or summaries, whose series add _bucket, _sum
// and _count.
type exported struct {
	names      map[string]string
	histograms map[string]bool
}

// has reports whether name is exported, as a family or as a histogram's
// or summary's series, and by which component.
func (e exported) has(name string) (string, bool) {
	if c, ok := e.names[name]; ok {
		return c, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && e.histograms[base] {
			return e.names[base], true
		}
	}
	return "", false
}

// missing returns the metric names of expr that are not exported and not
// pending.
func (e exported) missing(expr string) []string {
	var out []string
	for _, n := range metricNames(expr) {
		if _, ok := e.has(n); !ok && pending[n] == "" {
			out = append(out, n)
		}
	}
	return out
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// collect adds what g exports: the families it gathers now (with their
// types) and, through Describe, those registered that have no series yet
// (a counter vector before its first error, say).
func (e exported) collect(t *testing.T, component string, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("%s: gather: %v", component, err)
	}
	for _, mf := range mfs {
		e.names[mf.GetName()] = component
		if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY || mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM {
			e.histograms[mf.GetName()] = true
		}
	}
	c, ok := g.(prometheus.Collector)
	if !ok {
		t.Fatalf("%s: its gatherer (%T) cannot describe its metrics", component, g)
	}
	descs := make(chan *prometheus.Desc)
	go func() { c.Describe(descs); close(descs) }()
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("%s: no name in %s", component, d)
		}
		if _, seen := e.names[m[1]]; !seen {
			e.names[m[1]] = component
		}
	}
}

// startTraffic runs the demo (our broker, one factory's gateway, the sink
// on the MongoDB stand-in) until samples are stored, and returns what its
// components export.
func startTraffic(t *testing.T) exported {
	t.Helper()
	d, err := demo.Start(demo.Config{
		DataDir:    t.TempDir(),
		ClassesDir: "../../configs/devices",
		Factories:  1,
		Devices:    2,
		Interval:   100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	deadline := time.Now().Add(90 * time.Second)
	for d.Stats().Stored < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the demo stored %d samples in 90 s, want 20: %+v", d.Stats().Stored, d.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	e := exported{names: map[string]string{}, histograms: map[string]bool{}}
	gs := d.Gatherers()
	for _, want := range []string{"broker", "gateway plant-a", "sink"} {
		if gs[want] == nil {
			t.Fatalf("the demo has no %s registry: %v", want, gs)
		}
	}
	for name, g := range gs {
		e.collect(t, name, g)
	}
	return e
}

// TestDashboardsUseExportedMetrics extracts every PromQL expression of
// docs/grafana/*.json and checks that each metric name in it is exported
// by the broker, the gateway or the sink after some traffic (or listed in
// pending).
func TestDashboardsUseExportedMetrics(t *testing.T) {
	files, err := filepath.Glob("../../docs/grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in docs/grafana: %v", err)
	}
	e := startTraffic(t)

	t.Run("a typo fails", func(t *testing.T) {
		for expr, want := range map[string][]string{
			`sum(rate(factorywire_broker_produced_record_total{topic=~"$topic"}[$__rate_interval]))`:      {"factorywire_broker_produced_record_total"},
			`histogram_quantile(0.99, sum by (le) (rate(factorywire_sink_batches_total_bucket[5m])))`:     {"factorywire_sink_batches_total_bucket"},
			`sum(rate(factorywire_broker_produced_records_total[5m])) / factorywire_gateway_spool_sample`: {"factorywire_gateway_spool_sample"},
			`histogram_quantile(0.99, sum by (le) (rate(factorywire_sink_write_seconds_bucket[5m])))`:     nil,
		} {
			if got := e.missing(expr); !slices.Equal(got, want) {
				t.Errorf("%s: missing %v, want %v", expr, got, want)
			}
		}
	})

	used := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		qs, err := queries(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(qs) == 0 {
			t.Fatalf("%s: no queries found", f)
		}
		for _, q := range qs {
			names := metricNames(q.expr)
			if len(names) == 0 {
				t.Errorf("%s, %s: no metric in %q", filepath.Base(f), q.where, q.expr)
			}
			for _, n := range names {
				used[n] = true
			}
			if miss := e.missing(q.expr); len(miss) > 0 {
				t.Errorf("%s, %s: %v exported by none of broker, gateway, sink: %s", filepath.Base(f), q.where, miss, q.expr)
			}
		}
	}
	var pendingUsed []string
	for n, why := range pending {
		if c, ok := e.has(n); ok {
			t.Errorf("%s is exported now (by the %s): remove it from pending", n, c)
		} else if used[n] {
			pendingUsed = append(pendingUsed, n+" ("+why+")")
		}
	}
	sort.Strings(pendingUsed)
	t.Logf("%d metric names in the dashboards; pending, not yet exported: %s", len(used), strings.Join(pendingUsed, ", "))
}

// TestMetricNames pins the extraction of metric names from PromQL.
func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`rate(a_total[5m])`, []string{"a_total"}},
		{`sum by (topic) (rate(a_total{topic=~"$topic", x="y{z}"}[$__rate_interval]))`, []string{"a_total"}},
		{`histogram_quantile(0.99, sum by (le, conn) (rate(h_bucket[1m])))`, []string{"h_bucket"}},
		{`count(g > 0) or vector(0)`, []string{"g"}},
		{`topk(10, time() - ts_seconds)`, []string{"ts_seconds"}},
		{`sum without (instance, job) (rate(a_total[5m]))`, []string{"a_total"}},
		{`a / on(topic) group_left(class) b`, []string{"a", "b"}},
		{`rate(s_sum[5m]) / rate(s_count[5m] offset 1h) * 1e3`, []string{"s_sum", "s_count"}},
		{`max(x) by (y) > bool 2`, []string{"x"}},
		{`${metric_var} + m`, []string{"m"}},
		{`sum(rate(a_total[5m:30s]))`, []string{"a_total"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// TestDashboardShape: ready for file provisioning and for import: a uid
// and a title, every query on the DS_PROMETHEUS datasource variable,
// panel ids unique.
func TestDashboardShape(t *testing.T) {
	files, _ := filepath.Glob("../../docs/grafana/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			UID, Title string
			Templating struct {
				List []struct{ Name, Type, Query any }
			}
			Panels []struct {
				ID         int
				Title      string
				Type       string
				Datasource *struct{ Type, UID string }
				Targets    []struct {
					Datasource *struct{ Type, UID string }
					Expr       string
				}
			}
		}
		if err := json.Unmarshal(data, &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if dash.UID == "" || dash.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are needed to provision it", f, dash.UID, dash.Title)
		}
		hasVar := false
		for _, v := range dash.Templating.List {
			hasVar = hasVar || v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && v.Query == "prometheus"
		}
		if !hasVar {
			t.Errorf("%s: no datasource variable DS_PROMETHEUS of type prometheus", f)
		}
		ids := map[int]string{}
		for _, p := range dash.Panels {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("%s: panels %q and %q share id %d", f, other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q: datasource %+v, %d targets", f, p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${DS_PROMETHEUS}" || tg.Expr == "" {
					t.Errorf("%s: panel %q: a target on %+v with expr %q", f, p.Title, tg.Datasource, tg.Expr)
				}
			}
		}
	}
}
