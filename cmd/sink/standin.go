package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/standin"
)

const standinLongHelp = `Runs the embedded MongoDB stand-in, FerretDB 1.24 over SQLite files in
--data-dir, prints its URI (mongodb://127.0.0.1:27017/) as the first line of
standard output, and serves until SIGINT or SIGTERM, so that sink run and sink
query can be tried without a MongoDB. Data in --data-dir survives a restart;
remove the directory to start afresh.

It is NOT MongoDB: no time-series collections, no TTL (nothing ever expires),
no $first, $avg, $min, $max or $dateTrunc (sink query latest and window fail;
range and gaps work), no authentication, no TLS. Point a sink at it with, in
the sink's config:

    mongodb:
      uri: mongodb://127.0.0.1:27017   # the printed URI
      time_series: false                # the stand-in mode: plain collections

--listen must be a loopback address (127.0.0.0/8, ::1, localhost) unless
--allow-remote is given: with no authentication, anyone who reaches the port
reads, writes and drops every database.`

// loopback reports whether the host of addr is a loopback address or
// "localhost".
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func standinCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("sink standin", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory of the stand-in's SQLite files, created if missing; required")
	listen := fs.String("listen", "127.0.0.1:27017", "address to listen on, host:port (port 0: any free port)")
	allowRemote := fs.Bool("allow-remote", false, "accept a --listen address that is not loopback (the stand-in has no authentication)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error (FerretDB's own logs: errors only, all at debug)")
	logFormat := fs.String("log-format", "text", cli.LogFormatUsage)
	return &ffcli.Command{
		Name:       "standin",
		ShortUsage: "sink standin --data-dir DIR [--listen 127.0.0.1:27017] [--allow-remote]",
		ShortHelp:  "run the embedded MongoDB stand-in (FerretDB) to try the sink without MongoDB",
		LongHelp:   standinLongHelp,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			if *dataDir == "" {
				return usageError{Err: errors.New("--data-dir DIR is required: the stand-in keeps its SQLite files there")}
			}
			if _, _, err := net.SplitHostPort(*listen); err != nil {
				return usageError{Err: fmt.Errorf("--listen %q: %v", *listen, err)}
			}
			if !loopback(*listen) && !*allowRemote {
				return usageError{Err: fmt.Errorf("--listen %q is not a loopback address: the stand-in has no authentication or TLS, so anyone reaching it reads and drops everything; give --allow-remote to listen there anyway", *listen)}
			}
			// FerretDB logs each command it does not implement as a
			// warning (the driver's endSessions at every disconnect).
			flog := logger.With("component", "ferretdb")
			if !logger.Enabled(ctx, slog.LevelDebug) {
				if flog, err = cli.Logger("error", *logFormat); err != nil {
					return err
				}
				flog = flog.With("component", "ferretdb")
			}
			// Signals first: once the URI is printed, a caller may stop
			// the stand-in at any moment.
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := standin.Start(standin.Config{Dir: *dataDir, Listen: *listen, Logger: flog})
			if err != nil {
				// FerretDB formats its errors with %s: no errors.Is.
				if strings.Contains(err.Error(), "address already in use") {
					return fmt.Errorf("%w (a MongoDB already there? --listen 127.0.0.1:0 takes any free port)", err)
				}
				return err
			}
			if _, err := fmt.Fprintln(stdout, srv.URI()); err != nil {
				_ = srv.Close()
				return err
			}
			logger.Warn("THIS IS NOT MONGODB: the FerretDB stand-in, for trying factorywire only",
				"uri", srv.URI(), "data_dir", *dataDir,
				"lacks", "time-series collections, TTL, $first/$avg/$min/$max/$dateTrunc (sink query latest and window fail), authentication, TLS",
				"sink_config", "mongodb.uri: "+srv.URI()+" and mongodb.time_series: false")
			<-ctx.Done()
			logger.Info("stopping the stand-in")
			if err := srv.Close(); err != nil {
				return err
			}
			logger.Info("stand-in stopped")
			return nil
		},
	}
}
