package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/topics"
)

// usersCommand manages SASL/SCRAM users through DescribeUserScramCredentials
// and AlterUserScramCredentials, so it works on Apache Kafka as on ours (as
// kafka-configs.sh --entity-type users does). The password is read from a
// file or standard input, never from a flag; the client salts it, and only
// the salted password is sent.
func usersCommand(stdin io.Reader, out io.Writer) *ffcli.Command {
	mechanismFlag := func(fs *flag.FlagSet) *string {
		return fs.String("mechanism", "", "SCRAM-SHA-256 or SCRAM-SHA-512 (default: both)")
	}
	create := adminCommand("broker users", "create", "create --user NAME [--mechanism M] [--password-file F]  (password on stdin otherwise)",
		"create a SCRAM user, or set a new password", func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			user := fs.String("user", "", "user name (principal User:NAME); required")
			mech := mechanismFlag(fs)
			pwFile := fs.String("password-file", "", "file holding the password (default: the first line of standard input)")
			iterations := fs.Int("iterations", 8192, "SCRAM iterations, 4096 to 16384")
			return func(ctx context.Context, a *topics.Admin) error {
				mechs, err := scramMechanisms(*mech)
				if err != nil {
					return err
				}
				if *user == "" {
					return usageError{Err: errors.New("--user: required")}
				}
				pw, err := readPassword(*pwFile, stdin)
				if err != nil {
					return err
				}
				var ups []kadm.UpsertSCRAM
				for _, m := range mechs {
					ups = append(ups, kadm.UpsertSCRAM{User: *user, Mechanism: m, Iterations: int32(*iterations), Password: pw})
				}
				if err := alterUsers(ctx, a.Kadm(), nil, ups); err != nil {
					return err
				}
				for _, m := range mechs {
					fmt.Fprintf(out, "user %s: %s credential set (%d iterations)\n", *user, m, *iterations)
				}
				return nil
			}
		})
	list := adminCommand("broker users", "list", "list [--user NAME]...", "list SCRAM users and their mechanisms",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			var users stringList
			fs.Var(&users, "user", "user to describe (repeatable; default: all)")
			return func(ctx context.Context, a *topics.Admin) error {
				described, err := a.Kadm().DescribeUserSCRAMs(ctx, users...)
				if err != nil {
					return fmt.Errorf("describe SCRAM users: %w", err)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tMECHANISMS")
				var errs []error
				for _, d := range described.Sorted() {
					if d.Err != nil {
						errs = append(errs, fmt.Errorf("user %s: %w%s", d.User, d.Err, says(d.ErrMessage)))
						continue
					}
					var ms []string
					for _, c := range d.CredInfos {
						ms = append(ms, fmt.Sprintf("%s (%d iterations)", c.Mechanism, c.Iterations))
					}
					fmt.Fprintf(tw, "%s\t%s\n", d.User, strings.Join(ms, ", "))
				}
				tw.Flush()
				return errors.Join(errs...)
			}
		})
	del := adminCommand("broker users", "delete", "delete --user NAME [--mechanism M]", "delete a user's SCRAM credentials",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			user := fs.String("user", "", "user name; required")
			mech := mechanismFlag(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if *user == "" {
					return usageError{Err: errors.New("--user: required")}
				}
				mechs, err := scramMechanisms(*mech)
				if err != nil {
					return err
				}
				if *mech == "" {
					// Delete the mechanisms the user has.
					described, err := a.Kadm().DescribeUserSCRAMs(ctx, *user)
					if err != nil {
						return fmt.Errorf("describe user %s: %w", *user, err)
					}
					d := described[*user]
					if d.Err != nil {
						return fmt.Errorf("user %s: %w%s", *user, d.Err, says(d.ErrMessage))
					}
					mechs = nil
					for _, c := range d.CredInfos {
						mechs = append(mechs, c.Mechanism)
					}
				}
				var dels []kadm.DeleteSCRAM
				for _, m := range mechs {
					dels = append(dels, kadm.DeleteSCRAM{User: *user, Mechanism: m})
				}
				if err := alterUsers(ctx, a.Kadm(), dels, nil); err != nil {
					return err
				}
				for _, m := range mechs {
					fmt.Fprintf(out, "user %s: %s credential deleted\n", *user, m)
				}
				return nil
			}
		})
	return &ffcli.Command{
		Name:        "users",
		ShortUsage:  "broker users create|list|delete --brokers HOST:PORT ...",
		ShortHelp:   "manage SASL/SCRAM users on any Kafka-compatible cluster",
		Subcommands: []*ffcli.Command{create, list, del},
		Exec:        cli.NeedSubcommand("broker users", []*ffcli.Command{create, list, del}),
	}
}

func scramMechanisms(flag string) ([]kadm.ScramMechanism, error) {
	switch flag {
	case "":
		return []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512}, nil
	case "SCRAM-SHA-256":
		return []kadm.ScramMechanism{kadm.ScramSha256}, nil
	case "SCRAM-SHA-512":
		return []kadm.ScramMechanism{kadm.ScramSha512}, nil
	}
	return nil, usageError{Err: fmt.Errorf("--mechanism: %q must be SCRAM-SHA-256 or SCRAM-SHA-512", flag)}
}

// readPassword reads the password from file, or the first line of stdin.
// Its errors never quote the password.
func readPassword(file string, stdin io.Reader) (string, error) {
	var pw string
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{Err: fmt.Errorf("--password-file: %w", err)}
		}
		pw = strings.TrimRight(string(raw), "\r\n")
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return "", usageError{Err: errors.New("the password is empty (give it on standard input or with --password-file)")}
	}
	return pw, nil
}

func alterUsers(ctx context.Context, adm *kadm.Client, dels []kadm.DeleteSCRAM, ups []kadm.UpsertSCRAM) error {
	altered, err := adm.AlterUserSCRAMs(ctx, dels, ups)
	if err != nil {
		return fmt.Errorf("alter SCRAM users: %w", err)
	}
	var errs []error
	for _, a := range altered.Sorted() {
		if a.Err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w%s", a.User, a.Err, says(a.ErrMessage)))
		}
	}
	return errors.Join(errs...)
}

func says(msg string) string {
	if msg == "" {
		return ""
	}
	return " (the broker says: " + msg + ")"
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
