package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ForEachTarget runs test in a subtest per target, each with the address
// of its own broker: "ours" (started by ours, factorywire's broker as the
// calling package starts it), "kfake" (franz-go's in-memory reference
// broker) and "kafka" (a single-node Apache Kafka cluster, Start with
// default Options). A test asserting the same outcomes on the three is how
// factorywire keeps its promise to work unchanged on Apache Kafka.
func ForEachTarget(t *testing.T, ours func(t *testing.T) string, test func(t *testing.T, addr string)) {
	t.Helper()
	targets := []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"ours", ours},
		{"kfake", func(t *testing.T) string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return c.ListenAddrs()[0]
		}},
		{"kafka", func(t *testing.T) string { return Start(t, Options{}).Brokers()[0] }},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) { test(t, target.start(t)) })
	}
}
