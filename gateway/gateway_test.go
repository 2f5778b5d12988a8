package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/internal/kafkaclient"
)

// runGateway runs a gateway for cfg until the returned stop is called; stop
// waits for Run to return and fails the test on its error.
func runGateway(t *testing.T, cfg Config) (*Gateway, func()) {
	t.Helper()
	return runGatewayLogged(t, cfg, testLogger())
}

// runGatewayLogged is runGateway with the gateway logging to logger.
func runGatewayLogged(t *testing.T, cfg Config, logger *slog.Logger) (*Gateway, func()) {
	t.Helper()
	g, err := New(cfg, logger)
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("gateway did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return g, stop
}

// nextSeqs is each device's next seq from the gateway's health.
func nextSeqs(g *Gateway) map[string]uint64 {
	out := map[string]uint64{}
	for _, h := range g.Health() {
		out[h.ID] = h.NextSeq
	}
	return out
}

// polled is, from the gateway's health, each device's last seq and the
// samples polled in all (seqs start at 0).
func polled(g *Gateway) (last map[string]uint64, total int) {
	last = map[string]uint64{}
	for id, next := range nextSeqs(g) {
		last[id] = next - 1
		total += int(next)
	}
	return last, total
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGatewayBrokerOutage: samples flow from the simulator through the
// gateway to our broker; the broker stops for a while and comes back on the
// same address and data dir; every sample polled arrives once, each
// device's seq without a gap and in order, on its murmur2 partition.
func TestGatewayBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 3)
	createTopics(t, addr, plant.topics)
	g, stop := runGateway(t, plant.cfg)

	plant.delivered(t, addr, 30)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Polling goes on into the spool while the broker is away.
	waitFor(t, "30 samples spooled during the outage", 20*time.Second, func() bool { return g.spool.backlog(false) >= 30 })
	resp, err := http.Get("http://" + g.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %s, want 503", resp.Status)
	}
	startBroker(t, dir, addr)
	waitFor(t, "the backlog to drain", 30*time.Second, func() bool { return g.spool.backlog(true) == 0 })

	metrics := scrape(t, g)
	for _, want := range []string{
		`factorywire_gateway_produced_samples_total{topic="plant-t.press"}`,
		`factorywire_gateway_device_samples_total{class="press",conn="line-1",device="press-00"}`,
		`factorywire_gateway_modbus_round_trip_seconds_bucket{conn="line-1"`,
		`factorywire_gateway_modbus_requests_total{conn="line-1",function="3"}`,
		`factorywire_gateway_spool_samples{topic="plant-t.power-meter"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var health []struct {
		ID          string    `json:"id"`
		LastSuccess time.Time `json:"last_success"`
		NextSeq     uint64    `json:"next_seq"`
	}
	resp, err = http.Get("http://" + g.Addr().String() + "/devices")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || len(health) != len(plant.devices) || health[0].LastSuccess.IsZero() || health[0].NextSeq == 0 {
		t.Errorf("/devices: %v, %+v", err, health)
	}
	stop()
	last, total := polled(g)
	got := plant.delivered(t, addr, total)
	if n := checkSeqs(t, got, plant.devices, last, false); n != 0 {
		t.Fatalf("%d samples delivered twice", n)
	}
	t.Logf("%d samples of %d devices delivered across the outage", total, len(plant.devices))
}

func scrape(t *testing.T, g *Gateway) string {
	t.Helper()
	resp, err := http.Get("http://" + g.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestGatewayRestartKeepsSeq: a gateway stopped and started again over the
// same data dir continues each device's seq where it stopped.
func TestGatewayRestartKeepsSeq(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	createTopics(t, addr, plant.topics)
	g, stop := runGateway(t, plant.cfg)
	plant.delivered(t, addr, 6)
	stop()
	first := nextSeqs(g)
	g2, stop2 := runGateway(t, plant.cfg)
	waitFor(t, "new samples after the restart", 20*time.Second, func() bool {
		for id, n := range nextSeqs(g2) {
			if n < first[id]+3 {
				return false
			}
		}
		return true
	})
	stop2()
	last, total := polled(g2)
	checkSeqs(t, plant.delivered(t, addr, total), plant.devices, last, false)
}

func TestCheckReportsConfigErrors(t *testing.T) {
	base := func() Config {
		cfg := DefaultConfig()
		cfg.Factory, cfg.DataDir, cfg.ClassesDir = "plant-a", t.TempDir(), "../configs/devices"
		cfg.Connections = nil
		return cfg
	}
	u := uint8(250)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"bad factory", func(c *Config) { c.Factory = "Plant_A" }, `factory "Plant_A"`},
		{"no devices", func(c *Config) {}, "devices: at least one device required"},
		{"unknown class", func(c *Config) {
			c.Connections = append(c.Connections, testConn("l1"))
			c.Devices = []DeviceConfig{{ID: "d1", Class: "pres", Connection: "l1", Schedule: everySecond}}
		}, `devices[0] (d1).class "pres": no register map`},
		{"unknown connection", func(c *Config) {
			c.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "nope", Schedule: everySecond}}
		}, `devices[0] (d1).connection "nope"`},
		{"unit out of range", func(c *Config) {
			c.Connections = append(c.Connections, testConn("l1"))
			c.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "l1", Unit: &u, Schedule: everySecond}}
		}, "devices[0] (d1).unit 250"},
		{"pause between requests too long", func(c *Config) {
			cc := testConn("l1")
			cc.PauseBetweenRequests = time.Minute
			c.Connections = append(c.Connections, cc)
		}, `connections[0]: modbus: invalid config: connection "l1": pause_between_requests: 1m0s must be within 0..10s`},
		{"negative pause after connect", func(c *Config) {
			cc := testConn("l1")
			cc.PauseAfterConnect = -time.Second
			c.Connections = append(c.Connections, cc)
		}, `connection "l1": pause_after_connect: -1s`},
		{"spool policy", func(c *Config) { c.Spool.WhenFull = "drop" }, `spool.when_full "drop"`},
		{"compression", func(c *Config) { c.Kafka.Compression = "brotli" }, `kafka.compression "brotli"`},
		{"tls key without tls", func(c *Config) { c.Kafka.TLS.CAFile = "ca.pem" }, "kafka.tls.ca_file: set while TLS is off"},
		{"sasl without user", func(c *Config) { c.Kafka.SASL = kafkaclient.SASLConfig{Mechanism: "PLAIN", PasswordEnv: "X"} }, "kafka.sasl.username: required"},
		{"password variable unset", func(c *Config) {
			c.Connections = append(c.Connections, testConn("l1"))
			c.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "l1", Schedule: everySecond}}
			c.Kafka.SASL = kafkaclient.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "gw", PasswordEnv: "FW_GATEWAY_TEST_UNSET"}
		}, `kafka.sasl.password_env "FW_GATEWAY_TEST_UNSET": environment variable FW_GATEWAY_TEST_UNSET is not set`},
		{"CA file missing", func(c *Config) {
			c.Connections = append(c.Connections, testConn("l1"))
			c.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "l1", Schedule: everySecond}}
			c.Kafka.TLS = kafkaclient.TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}
		}, `kafka.tls.ca_file "/nonexistent/ca.pem": no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(&cfg)
			_, err := Check(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCheckPlansMaxRegisters: a device with its own max_registers_per_read
// gets a plan within it, which New uses; the others use the class's.
func TestCheckPlansMaxRegisters(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Factory, cfg.DataDir, cfg.ClassesDir = "plant-a", t.TempDir(), "../configs/devices"
	cfg.Connections = []modbus.ConnConfig{testConn("l1")}
	cfg.Devices = []DeviceConfig{
		{ID: "small", Class: "press", Connection: "l1", Schedule: everySecond, MaxRegistersPerRead: 2},
		{ID: "plain", Class: "press", Connection: "l1", Schedule: everySecond},
	}
	p, err := Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	small, ok := p.plans["small"]
	if !ok || len(small.Reads) == 0 {
		t.Fatalf("no plan for the device with max_registers_per_read: %+v", p.plans)
	}
	for _, r := range small.Reads {
		if !r.Table.Bits() && r.Quantity > 2 {
			t.Errorf("read %s of %d registers, over the device's 2", r.String(), r.Quantity)
		}
	}
	if _, ok := p.plans["plain"]; ok {
		t.Error("a plan of its own for a device without max_registers_per_read")
	}
}

var everySecond = scheduleEvery(time.Second)

func TestSampleTopic(t *testing.T) {
	cfg := Config{Factory: "plant-a"}
	if got := cfg.Topic("press"); got != "plant-a.press" {
		t.Fatalf("topic %q", got)
	}
	cfg.TopicPrefix = "prod"
	if got := cfg.Topic("press"); got != "prod.plant-a.press" {
		t.Fatalf("topic %q", got)
	}
}
