// Command broker runs factorywire's single-node, Kafka-wire-compatible
// broker.
//
//	broker serve --config configs/broker.yaml [--listen 127.0.0.1:9092] [--data-dir DIR] [--flush always|interval] [--http-listen 127.0.0.1:9110] [--log-level info] [--log-format text|json]
//	broker topics create|list|describe|alter|delete --brokers HOST:PORT ...
//	broker groups list|describe|lag|reset --brokers HOST:PORT ...
//	broker acls grant-factory|revoke-factory|list --brokers HOST:PORT ...
//	broker scrub --data-dir DIR [--topic T [--partition P]]
//	broker repair --data-dir DIR --topic T --partition P [--dry-run]
//
// topics and groups administer any Kafka-compatible cluster, as Kafka ships
// kafka-topics.sh and kafka-consumer-groups.sh beside its broker. On a
// secured cluster they take --tls, --tls-ca-file, --tls-cert-file,
// --tls-key-file, --tls-server-name, --tls-insecure-skip-verify,
// --sasl-mechanism, --sasl-username and --sasl-password-file or
// --sasl-password-env (the name of the variable holding the password:
// there is no password flag). A broker refusing the connection for good
// (wrong credentials, an untrusted or misnamed certificate) ends the
// command at once with exit status 1 and the cause.
//
// scrub verifies the partition logs of a data dir, read-only, even while a
// broker serves it; repair moves a stopped broker's damaged ranges to
// quarantine files (see storage/commitlog's package documentation and
// docs/OPERATIONS.md).
//
// Every flag has an environment twin: FACTORYWIRE_BROKER_ and the flag name in
// upper case with '-' as '_' (FACTORYWIRE_BROKER_DATA_DIR). Precedence:
// flag, then environment, then the config file, then the built-in default.
// Exit status: 0 after a clean stop, 1 when the broker fails, 2 for a usage or
// configuration error; broker scrub exits with 3 when it found damage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/configfile"
)

const envPrefix = "FACTORYWIRE_BROKER"

// usageError marks errors that exit with status 2.
type usageError = cli.UsageError

func main() { cli.Main("broker", run) }

// stdin is where `broker users create` reads a password; tests replace it.
var stdin io.Reader = os.Stdin

func run(args []string, stdout io.Writer) error {
	root := &ffcli.Command{
		Name:       "broker",
		ShortUsage: "broker <subcommand> [flags]",
		ShortHelp:  "factorywire's single-node Kafka-protocol broker",
		Subcommands: []*ffcli.Command{serveCommand(), topicsCommand(stdout), groupsCommand(stdout), usersCommand(stdin, stdout),
			scrubCommand(stdout), repairCommand(stdout), aclsCommand(stdout)},
	}
	root.Exec = cli.NeedSubcommand("broker", root.Subcommands)
	return cli.Run(root, args)
}

// serveFlagOf is the flag of each config key that has one: without a
// config file, a validation error names the flag that was (or was not)
// given instead of the key.
var serveFlagOf = map[string]string{
	"listen": "--listen", "advertised_addr": "--advertised-addr", "data_dir": "--data-dir", "flush": "--flush",
	"flush_interval": "--flush-interval", "http_listen": "--http-listen",
}

func serveCommand() *ffcli.Command {
	fs := flag.NewFlagSet("broker serve", flag.ContinueOnError)
	var (
		configPath = fs.String("config", "", "YAML config file (see configs/broker.yaml)")
		listen     = fs.String("listen", "", "address to accept Kafka clients on (default 127.0.0.1:9092)")
		advertised = fs.String("advertised-addr", "", "host:port given to clients in metadata (default: the listen address)")
		dataDir    = fs.String("data-dir", "", "directory for logs and metadata (required here or in the config)")
		flush      = fs.String("flush", "", "always: ack after fsync (default); interval: fsync every --flush-interval")
		flushEvery = fs.Duration("flush-interval", 0, "fsync period with --flush interval (default 1s)")
		autoCreate = fs.Bool("auto-create-topics", false, "create unknown topics on metadata requests")
		httpListen = fs.String("http-listen", "", "address to serve /metrics, /healthz and /readyz on (default: none)")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat  = fs.String("log-format", "text", cli.LogFormatUsage)
		bootUser   = fs.String("bootstrap-user", "", "create this SCRAM user at start if it has no credential (the first administrator; list it in authorization.super_users)")
		bootPwFile = fs.String("bootstrap-password-file", "", "file holding --bootstrap-user's password")
	)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "broker serve [--config FILE] [flags]",
		ShortHelp:  "run the broker until SIGINT or SIGTERM",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			cfg := broker.DefaultConfig()
			if *configPath != "" {
				if err := configfile.Load(*configPath, &cfg); err != nil {
					return usageError{Err: err}
				}
			}
			// Flags and their environment twins override the file.
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "listen":
					cfg.Listen = *listen
				case "advertised-addr":
					cfg.AdvertisedAddr = *advertised
				case "data-dir":
					cfg.DataDir = *dataDir
				case "flush":
					cfg.Flush = *flush
				case "flush-interval":
					cfg.FlushInterval = *flushEvery
				case "auto-create-topics":
					cfg.AutoCreateTopics = *autoCreate
				case "http-listen":
					cfg.HTTPListen = *httpListen
				}
			})
			if *bootUser != "" || *bootPwFile != "" {
				if *bootUser == "" || *bootPwFile == "" {
					return usageError{Err: errors.New("--bootstrap-user and --bootstrap-password-file go together")}
				}
				cfg.SASL.BootstrapUsers = append(cfg.SASL.BootstrapUsers, broker.BootstrapUser{Name: *bootUser, PasswordFile: *bootPwFile})
			}
			if err := cfg.Validate(); err != nil {
				if *configPath == "" {
					return usageError{Err: cli.KeyToFlag(err, serveFlagOf)}
				}
				return usageError{Err: fmt.Errorf("%s: %w", *configPath, err)}
			}
			cfg.Logger = logger
			return serve(ctx, cfg, logger)
		},
	}
}

func serve(ctx context.Context, cfg broker.Config, logger *slog.Logger) error {
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	attrs := []any{"addr", b.Addr().String(), "data_dir", cfg.DataDir, "flush", cfg.Flush, "cluster_id", b.ClusterID()}
	if a := b.HTTPAddr(); a != nil {
		attrs = append(attrs, "http", a.String())
	}
	// Signals before the line that says the broker listens: whoever
	// waits for that line may stop the broker at once.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP rereads the TLS listeners' certificates and keys.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger.Info("broker listening", attrs...)
	for done := false; !done; {
		select {
		case <-hup:
			logger.Info("SIGHUP: reloading TLS certificates")
			b.ReloadTLS() // logs each listener's result
		case <-ctx.Done():
			done = true
		}
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Shutdown(shutdownCtx)
}
