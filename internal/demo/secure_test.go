package demo

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// syncBuffer is a log destination a test reads while components write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSecuredPlant runs the secured demo (Config.Secure): SCRAM-SHA-512
// over TLS only, ACLs enforced, each gateway and the sink as their own
// users. Every polled sample is stored once; plant-a's gateway user may
// write plant-a's topics and nothing of plant-b's, and may not delete
// topics or change configs; a plaintext client gets nothing; the
// passwords are in 0600 files and in no log line.
func TestSecuredPlant(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s: skipped with -short")
	}
	logs := &syncBuffer{}
	d, err := Start(Config{
		DataDir:    t.TempDir(),
		ClassesDir: "../../configs/devices",
		Factories:  2,
		Devices:    3,
		Interval:   100 * time.Millisecond,
		Secure:     true,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitStats(t, d, "300 samples stored", 60*time.Second, func(s Stats) bool { return s.Stored >= 300 })
	if err := d.StopPolling(); err != nil {
		t.Fatal(err)
	}
	polled := d.Stats().Polled
	waitStats(t, d, "every polled sample stored", 60*time.Second, func(s Stats) bool { return s.Stored >= polled })
	checkStored(t, d, polled, 5)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(user string, opts ...kgo.Opt) *kgo.Client {
		o, err := d.kafkaAs(user).Opts(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(o, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	gw := as(GatewayUser("plant-a"), kgo.RecordRetries(1), kgo.RetryTimeout(5*time.Second))
	if err := gw.ProduceSync(ctx, &kgo.Record{Topic: "plant-a.press", Key: []byte("press-99"), Value: []byte("{}")}).FirstErr(); err != nil {
		t.Fatalf("plant-a's gateway writing plant-a.press: %v", err)
	}
	if err := gw.ProduceSync(ctx, &kgo.Record{Topic: "plant-b.press", Value: []byte("{}")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("plant-a's gateway writing plant-b.press: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"plant-a.press"}
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("plant-a.press")}}
	if resp, err := del.RequestWith(ctx, gw); err != nil || resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("plant-a's gateway deleting plant-a.press: %v %+v, want TOPIC_AUTHORIZATION_FAILED", err, resp)
	}
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "plant-a.press"
	res.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}
	alter.Resources = append(alter.Resources, res)
	if resp, err := alter.RequestWith(ctx, gw); err != nil || resp.Resources[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("plant-a's gateway altering plant-a.press: %v %+v, want TOPIC_AUTHORIZATION_FAILED", err, resp)
	}
	if err := as("sink").ProduceSync(ctx, &kgo.Record{Topic: "plant-a.press", Value: []byte("{}")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("the sink writing plant-a.press: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	plain, err := kgo.NewClient(kgo.SeedBrokers(d.BrokerAddr()), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := plain.Ping(pctx); err == nil {
		t.Fatal("a plaintext client without credentials was answered")
	}
	wrong := d.kafkaAs(GatewayUser("plant-a"))
	wrong.SASL.PasswordFile = d.PasswordFile(GatewayUser("plant-b"))
	if o, err := wrong.Opts(nil); err == nil {
		cl, _ := kgo.NewClient(append(o, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))...)
		if err := cl.Ping(pctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("plant-a's gateway user with plant-b's password: %v", err)
		}
		cl.Close()
	}

	files, _ := filepath.Glob(filepath.Join(d.SecureDir(), "*"))
	var passwords []string
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
		if strings.HasSuffix(f, ".password") {
			raw, _ := os.ReadFile(f)
			passwords = append(passwords, strings.TrimSpace(string(raw)))
		}
	}
	if len(passwords) != 4 { // admin, sink, two gateways
		t.Fatalf("password files: %v", files)
	}
	out := logs.String()
	for _, pw := range passwords {
		if strings.Contains(out, pw) {
			t.Fatal("a password is in the logs")
		}
	}
	if !strings.Contains(out, "principal=User:gateway-plant-a") {
		t.Fatalf("no log line names the gateway's principal; logs:\n%.3000s", out)
	}
}
