package gateway

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
)

// TestGatewayTagsAndUnits: samples produced by a running gateway carry,
// as schema version 2, their device's tags (the top-level tags overridden
// by the device's own) and their class's units, read back from the broker.
func TestGatewayTagsAndUnits(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	createTopics(t, addr, plant.topics)
	plant.cfg.Tags = map[string]string{"site": "north", "line": "line-1"}
	for i := range plant.cfg.Devices {
		if d := &plant.cfg.Devices[i]; d.ID == "press-00" {
			d.Tags = map[string]string{"line": "line-3", "asset_id": "P-1107"}
		}
	}
	classes, err := devices.LoadDir(plant.cfg.ClassesDir)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runGateway(t, plant.cfg)
	got := plant.delivered(t, addr, 4)
	stop()

	want := map[string]map[string]string{
		"press-00":       {"site": "north", "line": "line-3", "asset_id": "P-1107"},
		"power-meter-00": {"site": "north", "line": "line-1"},
	}
	for id, tags := range want {
		samples := got[id]
		if len(samples) == 0 {
			t.Fatalf("no sample of %s delivered", id)
		}
		units := classes[plant.devices[id]].Units
		if len(units) == 0 {
			t.Fatalf("class %s has no units: the test needs a register map with some", plant.devices[id])
		}
		for _, s := range samples {
			if !maps.Equal(s.Tags, tags) || !maps.Equal(s.Units, units) {
				t.Fatalf("%s seq %d: tags %v units %v, want %v and %v", id, s.Seq, s.Tags, s.Units, tags, units)
			}
		}
	}

	// The records are version 2 as written.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(plant.cfg.Topic("press")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	r := fs.Records()[0]
	if !strings.HasPrefix(string(r.Value), `{"v":2,`) || !strings.Contains(string(r.Value), `"tags":{"asset_id":"P-1107","line":"line-3","site":"north"},"units":{`) {
		t.Fatalf("record %s: want version 2 with the tags sorted, then the units", r.Value)
	}
}

// TestConfigTags: tags are checked where they are declared, with errors
// naming the device and the key, and the top-level ones apply to every
// device unless it has its own of the same key.
func TestConfigTags(t *testing.T) {
	base := func() Config {
		cfg := DefaultConfig()
		cfg.Factory, cfg.DataDir, cfg.ClassesDir = "plant-a", t.TempDir(), "../configs/devices"
		cfg.Connections = append(cfg.Connections, testConn("l1"))
		cfg.Devices = []DeviceConfig{
			{ID: "d1", Class: "press", Connection: "l1", Schedule: everySecond},
			{ID: "d2", Class: "press", Connection: "l1", Schedule: everySecond, Tags: map[string]string{"line": "line-3"}},
		}
		return cfg
	}
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m["t"+string(rune('a'+i/26))+string(rune('a'+i%26))] = "x"
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string // every line of the error; none: valid
	}{
		{"valid", func(c *Config) { c.Tags = map[string]string{"site": "north"} }, nil},
		{"32 with the top-level ones", func(c *Config) { c.Tags = many(31) }, nil},
		{"key upper case", func(c *Config) { c.Devices[1].Tags = map[string]string{"Line": "x"} },
			[]string{`devices[1] (d2).tags.Line: invalid tag key "Line": use 1 to 64 lower-case letters, digits and '_', starting with a letter`}},
		{"key with a dot", func(c *Config) { c.Devices[0].Tags = map[string]string{"asset.id": "x"} },
			[]string{`devices[0] (d1).tags.asset.id: invalid tag key "asset.id": use 1 to 64 lower-case letters, digits and '_', starting with a letter`}},
		{"empty value", func(c *Config) { c.Devices[1].Tags = map[string]string{"line": "", "zone": "z"} },
			[]string{`devices[1] (d2).tags.line: value is empty`}},
		{"value too long", func(c *Config) { c.Devices[1].Tags = map[string]string{"line": strings.Repeat("x", 257)} },
			[]string{`devices[1] (d2).tags.line: value is 257 bytes long, at most 256`}},
		{"value not UTF-8", func(c *Config) { c.Devices[1].Tags = map[string]string{"line": "l\xff"} },
			[]string{`devices[1] (d2).tags.line: value "l\xff" is not valid UTF-8`}},
		{"too many", func(c *Config) { c.Devices[0].Tags = many(33) },
			[]string{`devices[0] (d1).tags: 33 tags, at most 32`}},
		{"too many with the top-level ones", func(c *Config) { c.Tags = many(32) },
			[]string{`devices[1] (d2).tags: 33 tags with the top-level tags, at most 32`}},
		{"top-level too many", func(c *Config) { c.Tags = many(33) },
			[]string{`tags: 33 tags, at most 32`}},
		{"top-level key", func(c *Config) { c.Tags = map[string]string{"$site": "north", "ok": ""} },
			[]string{`tags.$site: invalid tag key "$site": use 1 to 64 lower-case letters, digits and '_', starting with a letter`, `tags.ok: value is empty`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(&cfg)
			_, err := Check(cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Check: %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check: no error, want %q", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Fatalf("Check:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}

	cfg := base()
	cfg.Tags = map[string]string{"site": "north", "line": "line-1"}
	if got, want := cfg.tags(cfg.Devices[0]), map[string]string{"site": "north", "line": "line-1"}; !maps.Equal(got, want) {
		t.Errorf("d1's tags %v, want the top-level %v", got, want)
	}
	if got, want := cfg.tags(cfg.Devices[1]), map[string]string{"site": "north", "line": "line-3"}; !maps.Equal(got, want) {
		t.Errorf("d2's tags %v, want %v (its line over the top-level one)", got, want)
	}
	if got := base().tags(base().Devices[0]); got != nil {
		t.Errorf("tags of a device without any: %v, want nil", got)
	}
}

// TestConfigTagsYAML: tags read from a file as the example config writes
// them; a number or a bool is read as its text, and a tag without a
// value is refused, naming the device and the key.
func TestConfigTagsYAML(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		path := filepath.Join(dir, "gateway.yaml")
		head := "factory: plant-a\ndata_dir: " + dir + "\nclasses_dir: " + classesDir(t) +
			"\nconnections:\n  - {name: l1, address: 127.0.0.1:502}\n"
		if err := os.WriteFile(path, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg, err := LoadConfig(write(`tags: {site: north}
devices:
  - id: press-01
    class: press
    connection: l1
    interval: 1s
    tags: {line: line-3, asset_id: 1107, spare: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.tags(cfg.Devices[0]), map[string]string{"site": "north", "line": "line-3", "asset_id": "1107", "spare": "true"}; !maps.Equal(got, want) {
		t.Fatalf("tags %v, want %v", got, want)
	}

	cfg, err = LoadConfig(write("devices:\n  - {id: press-01, class: press, connection: l1, interval: 1s, tags: {line: }}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || err.Error() != "devices[0] (press-01).tags.line: value is empty" {
		t.Fatalf("a tag without a value: %v", err)
	}
	if _, err := LoadConfig(write("devices:\n  - {id: press-01, class: press, connection: l1, interval: 1s, tags: [line-3]}\n")); err == nil {
		t.Fatal("tags as a list loaded, want an error")
	}
}

// classesDir is the example register maps' directory, absolute.
func classesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
