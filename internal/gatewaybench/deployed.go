package gatewaybench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/factorywire/factorywire/gateway"
)

// The values of Config.Gateway other than a path.
const (
	// GatewayBuild builds cmd/gateway of this module with the go command
	// and runs that binary as our gateway.
	GatewayBuild = "build"
	// GatewaySelf runs this binary's built-in gateway role instead.
	GatewaySelf = "self"
)

// gatewayPackage is the package GatewayBuild builds.
const gatewayPackage = "github.com/factorywire/factorywire/cmd/gateway"

// gatewayBinary resolves Config.Gateway: the path of the cmd/gateway
// binary to run as our gateway, "" for the built-in role. GatewayBuild
// builds it into dir, from the module the working directory is in (as
// `go run ./cmd/gatewaybench` and `go test` run).
func gatewayBinary(ctx context.Context, setting, dir string) (string, error) {
	switch setting {
	case GatewaySelf:
		return "", nil
	case GatewayBuild:
		path := filepath.Join(dir, "gateway")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path, gatewayPackage)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("-gateway build: go build %s: %v\n%s(run it inside this module's tree, or give -gateway a cmd/gateway binary, or -gateway self)",
				gatewayPackage, err, out)
		}
		return path, nil
	}
	if st, err := os.Stat(setting); err != nil || st.IsDir() {
		return "", fmt.Errorf("-gateway %q: not a file: want build, self or the path of a cmd/gateway binary", setting)
	}
	return setting, nil
}

// deployedConfig writes cfg, a configuration gatewayConfig built (its
// spool.sync and HTTP address set), as the YAML file the deployed gateway
// loads: the settings gatewayConfig sets, the rest left to the gateway's
// defaults. TestDeployedConfig loads it back and compares.
func deployedConfig(cfg gateway.Config) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "factory: %s\ndata_dir: %q\nclasses_dir: %q\nhttp_listen: %s\n", cfg.Factory, cfg.DataDir, cfg.ClassesDir, cfg.HTTPListen)
	b.WriteString("kafka:\n  brokers:\n")
	for _, addr := range cfg.Kafka.Brokers {
		fmt.Fprintf(&b, "    - %q\n", addr)
	}
	fmt.Fprintf(&b, "spool:\n  sync: %s\nconnections:\n", cfg.Spool.Sync)
	for _, c := range cfg.Connections {
		fmt.Fprintf(&b, "  - name: %s\n    address: %q\n", c.Name, c.Address)
	}
	b.WriteString("devices:\n")
	for _, d := range cfg.Devices {
		fmt.Fprintf(&b, "  - {id: %s, class: %s, connection: %s, unit: %d, interval: %s}\n", d.ID, d.Class, d.Connection, *d.Unit, d.Interval)
	}
	return []byte(b.String())
}

// freeLoopbackAddr returns a loopback address with a port free a moment
// ago, for the deployed gateway's HTTP listener (the bench reads /devices
// there; the gateway does not announce a port it picked itself).
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// devicesClient reads a deployed gateway's /devices into gatewayStats, as
// the built-in role's stats command computes them.
type devicesClient struct {
	url  string
	http *http.Client
	last map[string]uint64 // samples per device at the previous call
}

func newDevicesClient(addr string) *devicesClient {
	return &devicesClient{url: "http://" + addr + "/devices", http: &http.Client{Timeout: 30 * time.Second}, last: map[string]uint64{}}
}

// stats is the gateway's device health: totals, and the fewest and most
// samples one device emitted since the previous call.
func (c *devicesClient) stats(ctx context.Context) (gatewayStats, error) {
	var st gatewayStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return st, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("gateway /devices: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("gateway /devices: %s", resp.Status)
	}
	var devs []deviceStat
	if err := json.NewDecoder(resp.Body).Decode(&devs); err != nil {
		return st, fmt.Errorf("gateway /devices: %w", err)
	}
	return sumStats(devs, c.last), nil
}

// deviceStat is what gatewayStats sums of one device's health: the keys
// are those of the gateway's /devices.
type deviceStat struct {
	ID         string `json:"id"`
	LastError  string `json:"last_error"`
	SlowedDown bool   `json:"slowed_down"`
	Polls      uint64 `json:"polls"`
	Samples    uint64 `json:"samples"`
	Failures   uint64 `json:"failures"`
	Overruns   uint64 `json:"overruns"`
}

// sumStats sums devs; last holds each device's samples at the previous
// call and is updated, for MinSamples and MaxSamples.
func sumStats(devs []deviceStat, last map[string]uint64) gatewayStats {
	var st gatewayStats
	st.MinSamples = ^uint64(0)
	for _, h := range devs {
		st.Devices++
		st.Polls += h.Polls
		st.Samples += h.Samples
		st.Failures += h.Failures
		st.Overruns += h.Overruns
		if h.SlowedDown {
			st.SlowedDown++
		}
		if h.LastError != "" && st.LastError == "" {
			st.LastError = h.ID + ": " + h.LastError
		}
		d := h.Samples - last[h.ID]
		last[h.ID] = h.Samples
		st.MinSamples, st.MaxSamples = min(st.MinSamples, d), max(st.MaxSamples, d)
	}
	if st.Devices == 0 {
		st.MinSamples = 0
	}
	return st
}
