package broker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// httpGet fetches path from the broker's HTTP endpoints.
func httpGet(t *testing.T, b *Broker, path string) (int, string) {
	t.Helper()
	code, body, err := tryHTTPGet(b.HTTPAddr().String(), path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

func tryHTTPGet(addr, path string) (int, string, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func withHTTP(c *Config) { c.HTTPListen = "127.0.0.1:0" }

// TestHTTPEndpoints: /healthz and /readyz answer ok once New returned,
// /metrics serves the broker's metrics (those of the traffic just sent
// included) beside the Go runtime's and the process's, and the endpoints
// are gone after Close.
func TestHTTPEndpoints(t *testing.T) {
	b := startBroker(t, "", withHTTP)
	if b.HTTPAddr() == nil {
		t.Fatal("HTTPAddr is nil with http_listen set")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, b, path); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("GET %s: %d %q, want 200 \"ok\\n\"", path, code, body)
		}
	}
	addr := b.Addr().String()
	createTopic(t, addr, "plant-a.press", 1, nil)
	cl := newClient(t, addr, kgo.DefaultProduceTopic("plant-a.press"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if err := cl.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	code, body := httpGet(t, b, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	for _, want := range []string{
		`factorywire_broker_produced_records_total{topic="plant-a.press"} 3`,
		`factorywire_broker_requests_total{api="Produce"} 3`,
		`factorywire_broker_errors_total{api="Produce",error="NONE"} 3`,
		`factorywire_broker_log_size_bytes{partition="0",topic="plant-a.press"}`,
		"factorywire_broker_fsync_seconds_bucket",
		"factorywire_broker_connections ",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := httpGet(t, b, "/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
	httpAddr := b.HTTPAddr().String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tryHTTPGet(httpAddr, "/healthz"); err == nil {
		t.Fatal("the HTTP endpoints answer after Close")
	}
}

// TestHTTPListenOff: no http_listen, no endpoints.
func TestHTTPListenOff(t *testing.T) {
	if b := startBroker(t, ""); b.HTTPAddr() != nil {
		t.Fatalf("HTTPAddr %v without http_listen", b.HTTPAddr())
	}
}

// TestHTTPListenTaken: a port in use fails New, naming the key, and
// leaves the data dir free for the next start.
func TestHTTPListenTaken(t *testing.T) {
	other := startBroker(t, "", withHTTP)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.HTTPListen = "127.0.0.1:0", dir, other.HTTPAddr().String()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "http_listen "+cfg.HTTPListen) {
		t.Fatalf("New with http_listen in use: %v, want an error naming http_listen", err)
	}
	startBroker(t, dir) // the lock was released
}

// TestReadyzDuringShutdown holds a produce in its fsync while Close runs:
// /readyz answers 503 until the broker has drained, and the process stays
// live (/healthz 200) meanwhile.
func TestReadyzDuringShutdown(t *testing.T) {
	ffs := newFaultFS()
	b := startBroker(t, "", withHTTP, func(c *Config) { c.FS = ffs })
	addr := b.Addr().String()
	createTopic(t, addr, "slow", 1, nil)
	inSync, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool // only the first fsync waits
	ffs.set(func(op, name string) error {
		if op == "sync" && filepath.Base(filepath.Dir(name)) == "slow-0" && strings.HasSuffix(name, ".log") && held.CompareAndSwap(false, true) {
			close(inSync)
			<-release
		}
		return nil
	})
	c := dialRaw(t, addr)
	c.send(produceReq(8, -1, "slow", 0, makeBatch(testBatch{records: 1, timestamp: time.Now().UnixMilli(), value: []byte("x")})))
	select {
	case <-inSync:
	case <-time.After(30 * time.Second):
		t.Fatal("the produce's fsync never started")
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	var code int
	var body string
	for i := 0; i < 300; i++ {
		if code, body = httpGet(t, b, "/readyz"); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz during shutdown: %d %q, want 503 shutting down", code, body)
	}
	if code, _ := httpGet(t, b, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during shutdown: %d, want 200", code)
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return after the fsync was released")
	}
}

// TestReadyzListsOffline: a corrupt partition and a corrupt committed
// offsets' log leave the broker ready (the rest serves), and /readyz names
// both.
func TestReadyzListsOffline(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "dmg", 2, nil)
	c := dialRaw(t, addr)
	for i := range 3 {
		for p := int32(0); p < 2; p++ {
			if got := rawProduce(t, c, "dmg", p, 2, "x"); got.ErrorCode != 0 {
				t.Fatalf("produce #%d: error %d", i, got.ErrorCode)
			}
		}
	}
	adm := kadm.NewClient(newClient(t, addr))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "dmg", Partition: 0, At: 1, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(context.Background(), "g", offs); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"dmg-0", "__consumer_offsets"} {
		pdir := filepath.Join(dir, sub)
		damageActiveBatch(t, pdir, func(ps []int64) int64 { return ps[len(ps)-1] })
		if err := os.Remove(filepath.Join(pdir, "clean-shutdown")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	b = startBroker(t, dir, withHTTP)
	code, body := httpGet(t, b, "/readyz")
	if code != http.StatusOK || !strings.HasPrefix(body, "ok\n") {
		t.Fatalf("/readyz with offline parts: %d %q, want 200 ok", code, body)
	}
	t.Logf("/readyz:\n%s", body)
	for _, want := range []string{"consumer groups offline", "partition dmg-0 offline"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "dmg-1") {
		t.Errorf("/readyz names the healthy partition dmg-1:\n%s", body)
	}
}
