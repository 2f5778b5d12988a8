package cli

import (
	"flag"
	"strings"

	"github.com/factorywire/factorywire/internal/kafkaclient"
)

// KafkaFlags are the flags of a command that reaches a Kafka cluster
// without a config file (the broker's topics and groups commands, the
// demo's external-cluster mode): --brokers and the kafka block's tls and
// sasl keys, spelt as flags. A command's ff.WithEnvVarPrefix gives each
// its environment twin (FACTORYWIRE_BROKER_SASL_PASSWORD_FILE). There is
// no password flag: a password on a command line shows in ps and shell
// history; --sasl-password-env names a variable, --sasl-password-file a
// file.
//
//	fs := flag.NewFlagSet("broker topics list", flag.ContinueOnError)
//	kf := cli.AddKafkaFlags(fs, "127.0.0.1:9092")
//	... // after parsing
//	cfg, err := kf.Config() // a UsageError naming the flag if invalid
type KafkaFlags struct {
	brokers                                    *string
	tls, insecure                              *bool
	caFile, certFile, keyFile, serverName      *string
	mechanism, username, passwordFile, passEnv *string
}

// AddKafkaFlags defines the flags on fs. defaultBrokers is --brokers'
// default ("" for none: the demo runs its own broker then).
func AddKafkaFlags(fs *flag.FlagSet, defaultBrokers string) *KafkaFlags {
	return &KafkaFlags{
		brokers:      fs.String("brokers", defaultBrokers, "seed brokers of any Kafka-compatible cluster, host:port,..."),
		tls:          fs.Bool("tls", false, "connect over TLS"),
		caFile:       fs.String("tls-ca-file", "", "PEM bundle of the authorities that sign the brokers' certificates (default: the system's roots)"),
		certFile:     fs.String("tls-cert-file", "", "client certificate (PEM) for mutual TLS, with --tls-key-file"),
		keyFile:      fs.String("tls-key-file", "", "key of --tls-cert-file (PEM, unencrypted)"),
		serverName:   fs.String("tls-server-name", "", "name the brokers' certificates must hold (default: the host dialled)"),
		insecure:     fs.Bool("tls-insecure-skip-verify", false, "accept any broker certificate (testing only: anyone on the path can pose as the broker)"),
		mechanism:    fs.String("sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)"),
		username:     fs.String("sasl-username", "", "SASL user"),
		passwordFile: fs.String("sasl-password-file", "", "file holding the SASL password"),
		passEnv:      fs.String("sasl-password-env", "", "name of the environment variable holding the SASL password"),
	}
}

// BrokersSet reports whether --brokers is not empty.
func (f *KafkaFlags) BrokersSet() bool { return *f.brokers != "" }

// Config is the kafka block the flags give, validated and with its files
// and password readable; its errors are UsageErrors naming the flags.
func (f *KafkaFlags) Config() (kafkaclient.Config, error) {
	c := kafkaclient.Config{
		TLS: kafkaclient.TLSConfig{Enabled: *f.tls, CAFile: *f.caFile, CertFile: *f.certFile, KeyFile: *f.keyFile,
			ServerName: *f.serverName, InsecureSkipVerify: *f.insecure},
		SASL: kafkaclient.SASLConfig{Mechanism: *f.mechanism, Username: *f.username, PasswordFile: *f.passwordFile, PasswordEnv: *f.passEnv},
	}
	if *f.brokers != "" {
		c.Brokers = strings.Split(*f.brokers, ",")
	}
	if err := c.Validate(); err != nil {
		return c, UsageError{Err: FlagErrors(err)}
	}
	if _, err := c.Opts(nil); err != nil {
		return c, UsageError{Err: FlagErrors(err)}
	}
	return c, nil
}

// kafkaFlag is the flag of each key of the kafka block.
var kafkaFlag = map[string]string{
	"brokers":                  "--brokers",
	"tls.enabled":              "--tls",
	"tls.ca_file":              "--tls-ca-file",
	"tls.cert_file":            "--tls-cert-file",
	"tls.key_file":             "--tls-key-file",
	"tls.server_name":          "--tls-server-name",
	"tls.insecure_skip_verify": "--tls-insecure-skip-verify",
	"sasl.mechanism":           "--sasl-mechanism",
	"sasl.username":            "--sasl-username",
	"sasl.password_file":       "--sasl-password-file",
	"sasl.password_env":        "--sasl-password-env",
}

// flagWords rewrites the keys a reason mentions as flags.
var flagWords = func() *strings.Replacer {
	pairs := []string{"tls.enabled: true", "--tls", "tls.enabled: false", "no --tls"}
	for k, f := range kafkaFlag {
		if strings.Contains(k, ".") {
			pairs = append(pairs, k, f)
		}
	}
	return strings.NewReplacer(pairs...)
}()

// FlagErrors rewrites the kafkaclient.FieldErrors of err (Validate's,
// Opts's) to name flags instead of config keys.
func FlagErrors(err error) error {
	return kafkaclient.Rewrite(err, func(fe kafkaclient.FieldError) kafkaclient.FieldError {
		key, _, _ := strings.Cut(fe.Key, "[") // brokers[1]: the second of --brokers
		if f, ok := kafkaFlag[key]; ok {
			fe.Key = f
		}
		fe.Reason = flagWords.Replace(fe.Reason)
		return fe
	})
}
