package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/broker"
)

// TestTopicsAndGroupsCommands runs the admin subcommands against a broker
// in this process: create (twice: idempotent), list, describe, alter,
// groups list/lag/reset (dry run, then executed), delete.
func TestTopicsAndGroupsCommands(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), slog.New(slog.DiscardHandler)
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addr().String()
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

	must([]string{"TOPIC", "plant-a.press 3 7d 12 sink=0"}, "topics", "list", "--factory", "plant-a")
	must([]string{"plant-a.oven.dlq"}, "topics", "describe", "--topic", "plant-a.oven.dlq")
	must([]string{"retention 14d set on plant-a.press, plant-a.press.dlq"}, "topics", "alter", "--factory", "plant-a", "--class", "press", "--retention", "14d")
	must([]string{"warning: with more partitions", "plant-a.press now has 4 partitions"}, "topics", "alter", "--factory", "plant-a", "--class", "press", "--partitions", "4")
	must([]string{"sink", "Empty", "0"}, "groups", "list")
	must([]string{"group sink: Empty", "plant-a.press 0"}, "groups", "lag", "--group", "sink")
	must([]string{"dry run: nothing committed"}, "groups", "reset", "--group", "sink", "--topic", "plant-a.press", "--to-earliest")
	must([]string{"committed"}, "groups", "reset", "--group", "sink", "--topic", "plant-a.press", "--to-earliest", "--execute")
	must([]string{"sink Empty 0 12"}, "groups", "list") // the lag is everything again

	for _, bad := range [][]string{
		{"topics", "delete", "--factory", "plant-a"},
		{"topics", "create", "--factory", "Plant_A", "--classes", "press"},
		{"topics", "create", "--factory", "plant-a", "--classes", "press", "--retention", "seven days"},
		{"groups", "reset", "--group", "sink", "--topic", "plant-a.press"},
	} {
		_, err := cmd(bad...)
		if err == nil {
			t.Fatalf("broker %s succeeded", strings.Join(bad, " "))
		}
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
