package modbus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/configfile"
)

func TestConnConfigValidate(t *testing.T) {
	tcp := ConnConfig{Address: "10.0.0.7:502"}
	rtu := ConnConfig{Transport: RTU, Address: "/dev/ttyUSB0"}
	for _, tc := range []struct {
		name string
		cfg  ConnConfig
		want string // "" for valid
	}{
		{"tcp defaults", tcp, ""},
		{"rtu defaults", rtu, ""},
		{"rtu 9600 N 2", ConnConfig{Transport: RTU, Address: "/dev/ttyS1", BaudRate: 9600, Parity: "N", StopBits: 2}, ""},
		{"unknown transport", ConnConfig{Transport: "udp", Address: "x:1"}, `transport: "udp" must be one of [tcp rtu rtu_over_tcp ascii ascii_over_tcp]`},
		{"rtu over tcp", ConnConfig{Transport: RTUOverTCP, Address: "10.0.0.8:4001"}, ""},
		{"ascii over tcp", ConnConfig{Transport: ASCIIOverTCP, Address: "10.0.0.8:4002"}, ""},
		{"ascii defaults", ConnConfig{Transport: ASCII, Address: "/dev/ttyS2"}, ""},
		{"ascii 9600 8N2", ConnConfig{Transport: ASCII, Address: "/dev/ttyS2", BaudRate: 9600, DataBits: 8, Parity: "N", StopBits: 2}, ""},
		{"rtu over tcp without port", ConnConfig{Transport: RTUOverTCP, Address: "10.0.0.8"}, `address: "10.0.0.8" is not host:port`},
		{"rtu over tcp with parity", ConnConfig{Transport: RTUOverTCP, Address: "h:4001", Parity: "E"},
			"parity is set but transport is rtu_over_tcp (serial settings are for transport rtu or ascii"},
		{"ascii over tcp with baud", ConnConfig{Transport: ASCIIOverTCP, Address: "h:4001", BaudRate: 9600}, "baud_rate is set but transport is ascii_over_tcp"},
		{"ascii without address", ConnConfig{Transport: ASCII}, "address: required"},
		{"ascii data bits", ConnConfig{Transport: ASCII, Address: "/dev/x", DataBits: 6}, "data_bits: 6 must be 7 or 8"},
		{"ascii odd baud", ConnConfig{Transport: ASCII, Address: "/dev/x", BaudRate: 1000}, "baud_rate: 1000 is not a standard rate"},
		{"tcp without port", ConnConfig{Address: "10.0.0.7"}, `address: "10.0.0.7" is not host:port`},
		{"tcp with baud", ConnConfig{Address: "h:502", BaudRate: 9600}, "baud_rate is set but transport is tcp"},
		{"rtu without address", ConnConfig{Transport: RTU}, "address: required"},
		{"odd baud", ConnConfig{Transport: RTU, Address: "/dev/x", BaudRate: 12345}, "baud_rate: 12345 is not a standard rate"},
		{"data bits", ConnConfig{Transport: RTU, Address: "/dev/x", DataBits: 5}, "data_bits: 5 must be 7 or 8"},
		{"parity", ConnConfig{Transport: RTU, Address: "/dev/x", Parity: "even"}, `parity: "even" must be N, E or O`},
		{"stop bits", ConnConfig{Transport: RTU, Address: "/dev/x", StopBits: 3}, "stop_bits: 3 must be 1 or 2"},
		{"timeout", ConnConfig{Address: "h:502", Timeout: 2 * time.Minute}, "timeout: 2m0s must be within 1ms..1m"},
		{"negative timeout", ConnConfig{Address: "h:502", Timeout: -time.Second}, "timeout: -1s"},
		{"busy tries", ConnConfig{Address: "h:502", BusyTries: 11}, "busy_tries: 11 must be within 1..10"},
		{"busy backoff", ConnConfig{Address: "h:502", BusyBackoff: -time.Second}, "busy_backoff: -1s"},
		{"reconnect max below min", ConnConfig{Address: "h:502", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, "reconnect_max: 1ms must be within reconnect_min (1s)"},
		{"quirks", ConnConfig{Address: "h:502", PauseBetweenRequests: 20 * time.Millisecond, PauseAfterConnect: time.Second, CloseAfterScan: true}, ""},
		{"quirk pauses at their bound", ConnConfig{Transport: RTU, Address: "/dev/x", PauseBetweenRequests: MaxQuirkPause, PauseAfterConnect: MaxQuirkPause}, ""},
		{"negative pause between requests", ConnConfig{Address: "h:502", PauseBetweenRequests: -time.Millisecond}, "pause_between_requests: -1ms must be within 0..10s"},
		{"long pause between requests", ConnConfig{Address: "h:502", PauseBetweenRequests: 11 * time.Second}, "pause_between_requests: 11s must be within 0..10s"},
		{"negative pause after connect", ConnConfig{Address: "h:502", PauseAfterConnect: -time.Second}, "pause_after_connect: -1s must be within 0..10s"},
		{"long pause after connect", ConnConfig{Transport: RTU, Address: "/dev/x", PauseAfterConnect: time.Minute}, "pause_after_connect: 1m0s must be within 0..10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
			if tc.want != "" {
				if _, err := NewConn(tc.cfg); err == nil {
					t.Fatal("NewConn accepted the config")
				}
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		c := rtu.WithDefaults()
		if c.Name != "/dev/ttyUSB0" || c.BaudRate != 19200 || c.DataBits != 8 || c.Parity != "E" || c.StopBits != 1 ||
			c.Timeout != time.Second || c.BusyTries != 3 || c.BusyBackoff != 50*time.Millisecond ||
			c.ReconnectMin != 100*time.Millisecond || c.ReconnectMax != 10*time.Second ||
			c.PauseBetweenRequests != 0 || c.PauseAfterConnect != 0 || c.CloseAfterScan {
			t.Errorf("rtu defaults %+v", c)
		}
		if c := DefaultConnConfig(); c.Transport != TCP || c.BaudRate != 0 {
			t.Errorf("tcp defaults %+v", c)
		}
		if c := (ConnConfig{Transport: ASCII, Address: "/dev/ttyS2"}).WithDefaults(); c.BaudRate != 19200 || c.DataBits != 7 || c.Parity != "E" || c.StopBits != 1 {
			t.Errorf("ascii defaults %+v: want 19200 7E1", c)
		}
		for _, tr := range []Transport{RTUOverTCP, ASCIIOverTCP} {
			if c := (ConnConfig{Transport: tr, Address: "h:4001"}).WithDefaults(); c.BaudRate != 0 || c.DataBits != 0 || c.Parity != "" || c.StopBits != 0 {
				t.Errorf("%s defaults %+v: serial settings belong to the device server", tr, c)
			}
		}
		if c := DefaultPollerConfig(); c.FailureThreshold != 3 || c.MaxBackoff != time.Minute {
			t.Errorf("poller defaults %+v", c)
		}
	})
}

// TestConfigYAML decodes the config types as the gateway embeds them:
// snake_case keys, durations as strings, unknown keys rejected.
func TestConfigYAML(t *testing.T) {
	type gateway struct {
		Poller      PollerConfig `yaml:"poller"`
		Connections []ConnConfig `yaml:"connections"`
		Devices     []struct {
			ID       string   `yaml:"id"`
			Schedule Schedule `yaml:"schedule"`
		} `yaml:"devices"`
	}
	src := `
poller:
  failure_threshold: 5
  max_backoff: 2m
connections:
  - name: line-1
    address: 10.1.2.3:502
    timeout: 500ms
    busy_tries: 2
    busy_backoff: 20ms
    reconnect_min: 200ms
    reconnect_max: 30s
    pause_between_requests: 50ms
    pause_after_connect: 1s
    close_after_scan: true
  - name: rs485
    transport: rtu
    address: /dev/ttyUSB0
    baud_rate: 9600
    data_bits: 8
    parity: N
    stop_bits: 2
devices:
  - id: press-07
    schedule: {interval: 250ms}
  - id: meter-1
    schedule: {cron: "*/15 * * * * *"}
`
	var g gateway
	if err := configfile.Decode("gateway.yaml", []byte(src), &g); err != nil {
		t.Fatal(err)
	}
	if g.Poller.FailureThreshold != 5 || g.Poller.MaxBackoff != 2*time.Minute || g.Poller.Validate() != nil {
		t.Errorf("poller %+v", g.Poller)
	}
	c := g.Connections[0]
	if c.Timeout != 500*time.Millisecond || c.BusyTries != 2 || c.BusyBackoff != 20*time.Millisecond || c.ReconnectMax != 30*time.Second ||
		c.PauseBetweenRequests != 50*time.Millisecond || c.PauseAfterConnect != time.Second || !c.CloseAfterScan {
		t.Errorf("connection %+v", c)
	}
	for _, c := range g.Connections {
		if err := c.WithDefaults().Validate(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if r := g.Connections[1]; r.Transport != RTU || r.BaudRate != 9600 || r.Parity != "N" || r.StopBits != 2 {
		t.Errorf("rtu %+v", r)
	}
	if s := g.Devices[0].Schedule; s.Interval != 250*time.Millisecond || s.Validate() != nil {
		t.Errorf("schedule %+v", s)
	}
	if s := g.Devices[1].Schedule; s.Cron != "*/15 * * * * *" || s.Validate() != nil {
		t.Errorf("schedule %+v", s)
	}

	err := configfile.Decode("gateway.yaml", []byte("connections:\n  - address: h:502\n    timout: 1s\n"), &g)
	if err == nil || !strings.Contains(err.Error(), `gateway.yaml:3: unknown key "timout"`) {
		t.Errorf("misspelt key: %v", err)
	}
}
