package broker

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/internal/peers"
)

// TestKcat produces and consumes through librdkafka (Debian's kcat) with
// every codec it supports. librdkafka negotiates its own API versions and
// turns compression off if Produce is not advertised from v0, so this checks
// the ApiVersions table as much as the data path.
func TestKcat(t *testing.T) {
	kcat := peers.Program(t, "kcat", "install it with: apt-get install kcat")
	b := startBroker(t, "")
	addr := b.Addr().String()
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := "kcat-" + codec
			createTopic(t, addr, topic, 3, nil)
			var in bytes.Buffer
			const n = 300
			for i := 0; i < n; i++ {
				fmt.Fprintf(&in, "dev-%d:value-%d\n", i%7, i)
			}
			prod := exec.Command(kcat, "-b", addr, "-t", topic, "-P", "-K:", "-z", codec,
				"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5")
			prod.Stdin = &in
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("kcat produce: %v\n%s", err, out)
			}
			cons := exec.Command(kcat, "-b", addr, "-t", topic, "-C", "-e", "-o", "beginning", "-f", "%k:%s:%p:%o\n", "-c", fmt.Sprint(n))
			out, err := cons.Output()
			if err != nil {
				t.Fatalf("kcat consume: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != n {
				t.Fatalf("consumed %d records, want %d", len(lines), n)
			}
			seen := map[string]bool{}
			partitionOf := map[string]string{}
			for _, l := range lines {
				f := strings.Split(l, ":")
				if len(f) != 4 {
					t.Fatalf("kcat line %q", l)
				}
				seen[f[1]] = true
				if p, ok := partitionOf[f[0]]; ok && p != f[2] {
					t.Fatalf("key %s on partitions %s and %s", f[0], p, f[2])
				}
				partitionOf[f[0]] = f[2]
			}
			for i := 0; i < n; i++ {
				if !seen[fmt.Sprintf("value-%d", i)] {
					t.Fatalf("value-%d missing", i)
				}
			}
		})
	}
}
