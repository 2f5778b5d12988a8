package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/kafkatest"
)

// TestTopicsAndGroupsCommands runs the admin subcommands against our
// broker (in this process), kfake and Apache Kafka: create (twice:
// idempotent), list, describe, alter, groups list/lag/reset (dry run, then
// executed), delete, and the refusals.
func TestTopicsAndGroupsCommands(t *testing.T) {
	ours := func(t *testing.T) string {
		cfg := broker.DefaultConfig()
		cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
		b, err := broker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.Addr().String()
	}
	kafkatest.ForEachTarget(t, ours, testTopicsAndGroupsCommands)
}

func testTopicsAndGroupsCommands(t *testing.T, addr string) {
	target := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(append(args, "--brokers", addr), &out)
		return out.String(), err
	}
	must := func(want []string, args ...string) string {
		t.Helper()
		out, err := cmd(args...)
		if err != nil {
			t.Fatalf("broker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		flat := strings.Join(strings.Fields(out), " ") // tabwriter pads columns
		for _, w := range want {
			if !strings.Contains(flat, w) {
				t.Fatalf("broker %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
			}
		}
		return out
	}
	must([]string{"plant-a.press created (3 partitions)", "plant-a.press.dlq created (1 partitions)", "plant-a.oven"},
		"topics", "create", "--factory", "plant-a", "--classes", "press,oven", "--partitions", "3", "--retention", "7d")
	must([]string{"plant-a.press unchanged"}, "topics", "create", "--factory", "plant-a", "--classes", "press,oven", "--partitions", "3", "--retention", "7d")

	// Records and a group that read them, for list and the group commands.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("plant-a.press"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 12; i++ {
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte{byte('a' + i%3)}, Value: []byte("{}")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("sink"), kgo.ConsumeTopics("plant-a.press"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 12; {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v after %d of 12 records", err, n)
		}
		n += fs.NumRecords()
	}
	if err := c.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// One node each: a replication factor of 1. Our broker has no
	// min.insync.replicas config (a dash); kfake and Apache Kafka report
	// the default, 1.
	minISR := map[string]string{"ours": "-", "kfake": "1", "kafka": "1"}[target]
	// Twelve batches of one record each, stored as produced: 852 bytes on
	// each of the three.
	must([]string{"TOPIC PARTITIONS REPLICATION MIN.INSYNC.REPLICAS RETENTION RECORDS SIZE GROUP LAG", "plant-a.press 3 1 " + minISR + " 7d 12 852 B sink=0"}, "topics", "list", "--factory", "plant-a")
	must([]string{"plant-a.oven.dlq 1 1 " + minISR + " 7d 0 0 B -"}, "topics", "describe", "--topic", "plant-a.oven.dlq")
	must([]string{"plant-a.press unchanged"}, "topics", "create", "--factory", "plant-a", "--classes", "press", "--partitions", "3", "--replication-factor", "1")
	must([]string{"retention 14d set on plant-a.press, plant-a.press.dlq"}, "topics", "alter", "--factory", "plant-a", "--class", "press", "--retention", "14d")
	must([]string{"warning: with more partitions", "plant-a.press now has 4 partitions"}, "topics", "alter", "--factory", "plant-a", "--class", "press", "--partitions", "4")
	must([]string{"sink", "Empty", "0"}, "groups", "list")
	must([]string{"group sink: Empty", "plant-a.press 0"}, "groups", "lag", "--group", "sink")
	must([]string{"dry run: nothing committed"}, "groups", "reset", "--group", "sink", "--topic", "plant-a.press", "--to-earliest")
	must([]string{"committed"}, "groups", "reset", "--group", "sink", "--topic", "plant-a.press", "--to-earliest", "--execute")
	must([]string{"sink Empty 0 12"}, "groups", "list") // the lag is everything again
	checkJSONFormat(t, target, cmd)

	for _, bad := range []struct {
		args  []string
		want  string // in the error: the flag it names
		usage bool   // refused before asking the cluster: exit status 2
		only  string // the target that refuses it, "" for all
	}{
		{args: []string{"topics", "delete", "--factory", "plant-a"}, usage: true},
		{args: []string{"topics", "create", "--factory", "Plant_A", "--classes", "press"}},
		{args: []string{"topics", "create", "--factory", "plant-a", "--classes", "press", "--retention", "seven days"}, usage: true},
		{args: []string{"groups", "reset", "--group", "sink", "--topic", "plant-a.press"}},
		{args: []string{"groups", "lag", "--group", "sinq"}, want: "no such consumer group: sinq"},
		{args: []string{"topics", "list", "--format", "yaml"}, want: `--format "yaml": want text or json`, usage: true},
		{args: []string{"groups", "describe", "--group", "sinq"}, want: "no such consumer group: sinq"},
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--replication-factor", "-1"}, want: "--replication-factor -1", usage: true},
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--replication-factor", "40000"}, want: "--replication-factor 40000", usage: true},
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--min-insync-replicas", "-2"}, want: "--min-insync-replicas -2", usage: true},
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--replication-factor", "2", "--min-insync-replicas", "3"},
			want: "--min-insync-replicas 3 is more than --replication-factor 2", usage: true},
		// Refused by a single node.
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--replication-factor", "3"}, want: "--replication-factor 3: create plant-z.press"},
		// Refused by our broker, which has no min.insync.replicas.
		{args: []string{"topics", "create", "--factory", "plant-z", "--classes", "press", "--min-insync-replicas", "1"}, want: "--min-insync-replicas 1: create plant-z.press", only: "ours"},
	} {
		if bad.only != "" && bad.only != target {
			continue
		}
		_, err := cmd(bad.args...)
		if err == nil {
			t.Fatalf("broker %s succeeded", strings.Join(bad.args, " "))
		}
		if !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("broker %s: %v, want it to say %q", strings.Join(bad.args, " "), err, bad.want)
		}
		var ue usageError
		if errors.As(err, &ue) != bad.usage {
			t.Fatalf("broker %s: %v: a usage error is %v, want %v", strings.Join(bad.args, " "), err, !bad.usage, bad.usage)
		}
	}
	if out, _ := cmd("topics", "list"); strings.Contains(out, "plant-z") {
		t.Fatalf("refused creates left topics:\n%s", out)
	}
	must([]string{"deleted plant-a.oven", "deleted plant-a.press.dlq"}, "topics", "delete", "--factory", "plant-a", "--confirm", "plant-a")
	if out, _ := cmd("topics", "list"); strings.Contains(out, "plant-a") {
		t.Fatalf("topics left after delete:\n%s", out)
	}
	var ue usageError
	if _, err := cmd("topics", "delete", "--factory", "plant-a"); !errors.As(err, &ue) {
		t.Fatalf("delete without --confirm: %v, want a usage error", err)
	}
}

// TestTopicsReplicationOnKafka runs `topics create --replication-factor 3
// --min-insync-replicas 2`, `topics list` and `topics describe` against a
// three-broker Apache Kafka 4.1.1 (internal/kafkatest; a dedicated
// controller beside the brokers), and reads back with kadm what the
// topics got: three replicas per partition, min.insync.replicas=2 set on
// each topic.
func TestTopicsReplicationOnKafka(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Nodes: 3, Controllers: 1})
	brokers := strings.Join(c.Brokers(), ",")
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(append(args, "--brokers", brokers), &out)
		return strings.Join(strings.Fields(out.String()), " "), err // tabwriter pads columns
	}
	out, err := cmd("topics", "create", "--factory", "plant-r", "--classes", "press,power-meter", "--partitions", "3",
		"--replication-factor", "3", "--min-insync-replicas", "2")
	if err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	for _, w := range []string{"plant-r.press created (3 partitions)", "plant-r.power-meter.dlq created (1 partitions)"} {
		if !strings.Contains(out, w) {
			t.Fatalf("topics create: output lacks %q:\n%s", w, out)
		}
	}
	// Twelve one-record batches, as in testTopicsAndGroupsCommands: the
	// size listed is one replica's, 852 bytes, not three replicas'.
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.DefaultProduceTopic("plant-r.press"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 12; i++ {
		if err := p.ProduceSync(pctx, &kgo.Record{Key: []byte{byte('a' + i%3)}, Value: []byte("{}")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Each command is a new client, which may ask a broker that learns of
	// the topics a moment after the one create asked (Apache Kafka's
	// brokers follow the controller's metadata log): ask again for a while.
	eventually := func(what string, check func() error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := check()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	eventually("topics list", func() error {
		out, err := cmd("topics", "list", "--factory", "plant-r")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		for _, w := range []string{"REPLICATION MIN.INSYNC.REPLICAS", "plant-r.press 3 3 2 ", " 12 852 B ", "plant-r.press.dlq 1 3 2 ",
			"plant-r.power-meter 3 3 2 ", "plant-r.power-meter.dlq 1 3 2 "} {
			if !strings.Contains(out+" ", w) {
				return fmt.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		return nil
	})
	eventually("topics describe", func() error {
		out, err := cmd("topics", "describe", "--topic", "plant-r.press")
		if err != nil || !strings.Contains(out+" ", "plant-r.press 3 3 2 ") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	// More replicas than brokers: Kafka refuses, and the error names the flag.
	if out, err = cmd("topics", "create", "--factory", "plant-s", "--classes", "press", "--replication-factor", "4"); err == nil ||
		!strings.Contains(err.Error(), "--replication-factor 4: create plant-s.press") {
		t.Fatalf("--replication-factor 4 on three brokers: %v\n%s", err, out)
	}

	// What the cluster holds, read back with kadm.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{"plant-r.press", "plant-r.press.dlq", "plant-r.power-meter", "plant-r.power-meter.dlq"}
	eventually("the topics as kadm reads them", func() error {
		details, err := adm.ListTopics(ctx, names...)
		if err != nil {
			return err
		}
		for _, name := range names {
			td, ok := details[name]
			if !ok || td.Err != nil {
				return fmt.Errorf("%s: not listed (%v)", name, td.Err)
			}
			want := 3
			if strings.HasSuffix(name, ".dlq") {
				want = 1
			}
			if len(td.Partitions) != want {
				return fmt.Errorf("%s: %d partitions, want %d", name, len(td.Partitions), want)
			}
			for _, p := range td.Partitions {
				if len(p.Replicas) != 3 {
					return fmt.Errorf("%s partition %d: replicas %v, want 3", name, p.Partition, p.Replicas)
				}
			}
		}
		if _, ok := details["plant-s.press"]; ok {
			return errors.New("the refused create left plant-s.press")
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, names...)
		if err != nil {
			return err
		}
		if len(rcs) != len(names) {
			return fmt.Errorf("configs of %d topics, want %d", len(rcs), len(names))
		}
		for _, rc := range rcs {
			i := slices.IndexFunc(rc.Configs, func(c kadm.Config) bool { return c.Key == "min.insync.replicas" })
			if rc.Err != nil || i < 0 || rc.Configs[i].MaybeValue() != "2" || rc.Configs[i].Source != kmsg.ConfigSourceDynamicTopicConfig {
				return fmt.Errorf("%s: min.insync.replicas not 2 set on the topic (index %d, error %v): %+v", rc.Name, i, rc.Err, rc.Configs)
			}
		}
		return nil
	})
}

// checkJSONFormat checks `--format json` of topics list and describe and
// groups list and lag against the schema docs/OPERATIONS.md documents:
// every key (no more, no fewer) and the values the test's set-up left
// (plant-a.press: 4 partitions, 14d, 12 records of 852 bytes, group sink
// 12 behind after its reset to the earliest offsets).
func checkJSONFormat(t *testing.T, target string, cmd func(args ...string) (string, error)) {
	t.Helper()
	get := func(args ...string) map[string]any {
		t.Helper()
		out, err := cmd(append(args, "--format", "json")...)
		if err != nil {
			t.Fatalf("broker %s --format json: %v\n%s", strings.Join(args, " "), err, out)
		}
		var v map[string]any
		dec := json.NewDecoder(strings.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("broker %s --format json: not one JSON object (%v):\n%s", strings.Join(args, " "), err, out)
		}
		return v
	}
	keys := func(what string, v any, want ...string) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", what, v)
		}
		got := slices.Sorted(maps.Keys(m))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: keys %v, want %v", what, got, want)
		}
		return m
	}
	num := func(v any) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprint(v)
	}
	topicKeys := []string{"topic", "prefix", "factory", "class", "dlq", "partitions", "replication_factor", "min_insync_replicas",
		"retention_ms", "records", "size_bytes", "size_error", "group_lag"}
	minISR := map[string]string{"ours": "null", "kfake": "1", "kafka": "1"}[target]
	for _, args := range [][]string{{"topics", "list", "--factory", "plant-a"}, {"topics", "describe", "--topic", "plant-a.press"}} {
		doc := keys("topics", get(args...), "topics")
		list, _ := doc["topics"].([]any)
		var press map[string]any
		for _, e := range list {
			m := keys("a topic", e, topicKeys...)
			if m["topic"] == "plant-a.press" {
				press = m
			}
		}
		if press == nil {
			t.Fatalf("broker %s --format json: no plant-a.press in %v", strings.Join(args, " "), list)
		}
		got := fmt.Sprintf("prefix=%q factory=%v class=%v dlq=%v partitions=%v replication_factor=%s min_insync_replicas=%s retention_ms=%s records=%v size_bytes=%s size_error=%s group_lag=%v",
			press["prefix"], press["factory"], press["class"], press["dlq"], press["partitions"], num(press["replication_factor"]), num(press["min_insync_replicas"]),
			num(press["retention_ms"]), press["records"], num(press["size_bytes"]), num(press["size_error"]), press["group_lag"])
		want := `prefix="" factory=plant-a class=press dlq=false partitions=4 replication_factor=1 min_insync_replicas=` + minISR +
			` retention_ms=1209600000 records=12 size_bytes=852 size_error=null group_lag=map[sink:12]`
		if got != want {
			t.Errorf("broker %s --format json: plant-a.press\n got %s\nwant %s", strings.Join(args, " "), got, want)
		}
	}

	doc := keys("groups", get("groups", "list"), "groups")
	list, _ := doc["groups"].([]any)
	found := false
	for _, e := range list {
		m := keys("a group", e, "group", "state", "members", "lag")
		if m["group"] == "sink" {
			found = true
			if got := fmt.Sprintf("%v %v %v", m["state"], m["members"], m["lag"]); got != "Empty 0 12" {
				t.Errorf("groups list --format json: sink is %s, want Empty 0 12", got)
			}
		}
	}
	if !found {
		t.Errorf("groups list --format json: no group sink in %v", list)
	}

	lag := keys("group lag", get("groups", "lag", "--group", "sink"), "group", "state", "partitions")
	if lag["group"] != "sink" || lag["state"] != "Empty" {
		t.Errorf("groups lag --format json: group %v state %v, want sink Empty", lag["group"], lag["state"])
	}
	parts, _ := lag["partitions"].([]any)
	var total int64
	for _, e := range parts {
		m := keys("a partition", e, "topic", "partition", "committed", "end", "lag", "member")
		if m["topic"] != "plant-a.press" || m["member"] != nil {
			t.Errorf("groups lag --format json: partition %v", m)
		}
		n, _ := m["lag"].(json.Number).Int64()
		total += n
	}
	if total != 12 {
		t.Errorf("groups lag --format json: lag sums to %d over %v, want 12", total, parts)
	}
}
