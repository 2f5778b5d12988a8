// Command brokersoak runs factorywire's broker as a child process next to a
// producer/consumer pair and a mix of hostile clients for a while, then
// reports the acknowledged records lost (must be 0), duplicates and
// reorders, the broker's peak RSS and open files against the bounds its
// limits set, the hostile clients' outcomes and the limits the broker
// logged hitting. docs/OPERATIONS.md ("Soak test: the broker under hostile
// clients") explains the report; internal/brokersoak holds the logic.
//
//	go run ./cmd/brokersoak [-duration 5m] [-out FILE] [-strict] [-broker-bin PATH]
//	    [-kinds conn-flood,slowloris,...] [-max-connections 200] ...
//
// Every flag has an environment twin: BROKERSOAK_ and the flag name in
// upper case with '-' as '_' (BROKERSOAK_DURATION=10m).
//
// Exit status: 0 when the run passed, 1 when it failed (an acknowledged
// record lost, more files open than the bound, the broker crashed; with
// -strict also any unmet expectation) or could not run, 2 for a usage
// error.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/brokersoak"
)

var command = benchkit.Command{
	Name:      "brokersoak",
	Summary:   "Runs the broker under hostile clients beside a producer/consumer pair and reports lost records, peak RSS and open files.",
	EnvPrefix: "BROKERSOAK",
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := brokersoak.DefaultConfig()
	var out, kinds string
	register := func(fs *flag.FlagSet) {
		fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the hostile clients run")
		fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "how long the pair runs alone first (the RSS baseline is read at its end)")
		fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "bound of the producer's flush, the consumer's drain and the final read, each")
		fs.StringVar(&cfg.BrokerBin, "broker-bin", "", "broker binary to run (default: go build ./cmd/broker into the work directory)")
		fs.StringVar(&cfg.Dir, "dir", "", "parent of the work directory (default: the system's temporary directory)")
		fs.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (broker config, data, log); it is always kept when the run fails")
		fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
		fs.StringVar(&out, "out", "", "also write the Markdown report to this file")
		fs.BoolVar(&cfg.Strict, "strict", false, "fail on any unmet expectation of a hostile client, duplicates, reorders, unexpired groups, RSS above the reference")
		fs.StringVar(&kinds, "kinds", "", "comma-separated hostile clients to run (default all: "+strings.Join(brokersoak.Kinds(), ",")+")")
		fs.StringVar(&cfg.MetricsURL, "metrics-url", "", "the broker's Prometheus endpoint, scraped at the end for limit hits (default: none)")
		fs.StringVar(&cfg.ExtraBrokerConfig, "broker-config", "", "YAML file of broker config keys merged over the soak's (not listen or data_dir)")
		fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "the pair's offered load, records per second")
		fs.IntVar(&cfg.ValueBytes, "value-bytes", cfg.ValueBytes, "record value size")
		fs.IntVar(&cfg.Topics, "topics", cfg.Topics, "the pair's topics")
		fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "partitions of each of the pair's topics")
		fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "record keys the producer cycles through")
		fs.Int64Var(&cfg.SegmentBytes, "segment-bytes", cfg.SegmentBytes, "segment.bytes of the pair's topics")
		fs.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "broker max_connections")
		fs.IntVar(&cfg.MaxConnectionsPerIP, "max-connections-per-ip", cfg.MaxConnectionsPerIP, "broker max_connections_per_ip")
		fs.DurationVar(&cfg.ConnectionsMaxIdle, "connections-max-idle", cfg.ConnectionsMaxIdle, "broker connections_max_idle")
		fs.DurationVar(&cfg.RequestReadTimeout, "request-read-timeout", cfg.RequestReadTimeout, "broker request_read_timeout")
		fs.DurationVar(&cfg.ResponseWriteTimeout, "response-write-timeout", cfg.ResponseWriteTimeout, "broker response_write_timeout")
		fs.Int64Var(&cfg.QueuedMaxRequestBytes, "queued-max-request-bytes", cfg.QueuedMaxRequestBytes, "broker queued_max_request_bytes")
		fs.Int64Var(&cfg.QueuedMaxResponseBytes, "queued-max-response-bytes", cfg.QueuedMaxResponseBytes, "broker queued_max_response_bytes")
		fs.IntVar(&cfg.MaxPartitions, "max-partitions", cfg.MaxPartitions, "broker max_partitions")
		fs.IntVar(&cfg.MaxOpenClosedSegments, "max-open-closed-segments", cfg.MaxOpenClosedSegments, "broker max_open_closed_segments")
		fs.DurationVar(&cfg.ClosedSegmentIdle, "closed-segment-idle", cfg.ClosedSegmentIdle, "broker closed_segment_idle")
		fs.DurationVar(&cfg.OffsetsRetention, "offsets-retention", cfg.OffsetsRetention, "broker offsets_retention")
		fs.DurationVar(&cfg.OffsetsRetentionCheckInterval, "offsets-retention-check-interval", cfg.OffsetsRetentionCheckInterval, "broker offsets_retention_check_interval")
	}
	prepare := func(map[string]bool) error {
		if kinds != "" {
			cfg.Kinds = strings.Split(kinds, ",")
		}
		return cfg.Validate()
	}
	return command.Main(args, register, prepare, func(ctx context.Context, commandLine string) error {
		cfg.Log = os.Stderr
		rep, err := brokersoak.Run(ctx, cfg)
		if err != nil {
			return err
		}
		rep.CommandLine = commandLine
		var md bytes.Buffer
		rep.WriteMarkdown(&md)
		os.Stdout.Write(md.Bytes())
		if out != "" {
			if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write the report: %w", err)
			}
		}
		if f := rep.Failures(); len(f) > 0 {
			return fmt.Errorf("the soak failed (%d failures; work directory %s)", len(f), rep.WorkDir)
		}
		return nil
	})
}
