package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/gateway/telegraf"
	"github.com/factorywire/factorywire/internal/cli"
)

const importTelegrafHelp = `import-telegraf turns the [[inputs.modbus]] sections of a Telegraf config (the
register, request and metric styles of Telegraf v1.37) into a gateway config and
register maps, and reports, with the Telegraf file and line, every setting it did
not carry over or carried over with a difference (gateway/telegraf documents the
mapping; docs/OPERATIONS.md "Coming from Telegraf" shows a run).

  gateway import-telegraf telegraf.conf                     (print the files and the report)
  gateway import-telegraf --out /etc/factorywire telegraf.conf
  gateway check --config /etc/factorywire/gateway.yaml

--out DIR writes DIR/gateway.yaml and DIR/devices/<class>.yaml, and refuses to
overwrite a file unless --force. Without --out the files are printed to standard
output. The report goes to standard error; --format json prints it to standard
output as one JSON object instead (with the files' text when there is no --out).

Exit status: 0 when everything was carried over (the report has notes only),
3 when the files were written (or printed) with warnings, 1 when nothing was
importable (no file written), 2 for a usage error (flags, an unreadable or
non-TOML file, a file --out would overwrite).

Every flag has an environment twin: FACTORYWIRE_GATEWAY_ and the flag in upper
case with '-' as '_' (FACTORYWIRE_GATEWAY_FACTORY).`

// exitWarnings is import-telegraf's exit status when files were produced
// with warnings.
const exitWarnings = 3

func importTelegrafCommand(stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("gateway import-telegraf", flag.ContinueOnError)
	out := fs.String("out", "", "write DIR/gateway.yaml and DIR/devices/<class>.yaml (default: print them)")
	force := fs.Bool("force", false, "with --out: overwrite existing files")
	format := fs.String("format", "text", "the report: text (to standard error) or json (to standard output)")
	factory := fs.String("factory", telegraf.DefaultFactory, "the gateway's factory, first part of its topics ([a-z0-9-])")
	dataDir := fs.String("data-dir", telegraf.DefaultDataDir, "the gateway's data_dir (its spool)")
	legacy := fs.Bool("legacy-float32", false, "read the register style's FLOAT32 as Telegraf before v1.37 did (UFIXED: unsigned integer × scale), not as an IEEE float")
	return &ffcli.Command{
		Name:       "import-telegraf",
		ShortUsage: "gateway import-telegraf [--out DIR [--force]] [--format text|json] [--factory NAME] TELEGRAF.CONF",
		ShortHelp:  "turn Telegraf inputs.modbus sections into a gateway config and register maps",
		LongHelp:   importTelegrafHelp,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 1 { // flags after the file name
				if err := fs.Parse(args[1:]); err != nil {
					return usageError{Err: err}
				}
				args = append(args[:1], fs.Args()...)
			}
			if len(args) != 1 {
				return usageError{Err: fmt.Errorf("want one Telegraf config file, got %d arguments", len(args))}
			}
			if *format != "text" && *format != "json" {
				return usageError{Err: fmt.Errorf("--format %q: want text or json", *format)}
			}
			if *force && *out == "" {
				return usageError{Err: errors.New("--force: only with --out")}
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{Err: err}
			}
			res, err := telegraf.Import(args[0], src, telegraf.Options{Factory: *factory, DataDir: *dataDir, LegacyFloat32: *legacy})
			if err != nil {
				return usageError{Err: err}
			}
			var written []string
			if res.Importable() && *out != "" {
				if written, err = res.Write(*out, *force); err != nil {
					if errors.Is(err, telegraf.ErrExists) {
						return usageError{Err: err}
					}
					return err
				}
			}
			if *format == "json" {
				err = printImportJSON(stdout, res, *out, written)
			} else {
				err = printImport(stdout, stderr, res, *out, written)
			}
			switch {
			case err != nil:
				return err
			case !res.Importable():
				return errors.New(res.Summary())
			case res.Warnings() > 0:
				return cli.ExitError{Code: exitWarnings, Err: fmt.Errorf("imported with %d warnings (see the report)", res.Warnings())}
			}
			return nil
		},
	}
}

// printImport prints the report to stderr and, without --out, the files
// to stdout.
func printImport(stdout, stderr io.Writer, res *telegraf.Result, out string, written []string) error {
	for _, i := range res.Issues {
		fmt.Fprintln(stderr, i)
	}
	if out == "" {
		for _, f := range res.Files() {
			fmt.Fprintf(stdout, "# ==> %s <==\n%s\n", f.Path, f.Data)
		}
	}
	for _, p := range written {
		fmt.Fprintf(stderr, "wrote %s\n", p)
	}
	_, err := fmt.Fprintf(stderr, "%s\n", res.Summary())
	return err
}

// importJSON is the report of --format json, with stable snake_case keys.
type importJSON struct {
	Summary     string            `json:"summary"`
	Importable  bool              `json:"importable"`
	Warnings    int               `json:"warnings"`
	Notes       int               `json:"notes"`
	Devices     int               `json:"devices"`
	Connections int               `json:"connections"`
	Classes     []importClass     `json:"classes"`
	Out         string            `json:"out"`     // "" without --out
	Written     []string          `json:"written"` // paths written
	Files       map[string]string `json:"files"`   // path → text, without --out
	Issues      []telegraf.Issue  `json:"issues"`
}

type importClass struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Fields int    `json:"fields"`
}

func printImportJSON(stdout io.Writer, res *telegraf.Result, out string, written []string) error {
	j := importJSON{Summary: res.Summary(), Importable: res.Importable(), Warnings: res.Warnings(), Notes: len(res.Issues) - res.Warnings(),
		Devices: res.Devices, Connections: res.Connections, Classes: []importClass{}, Out: out, Written: written,
		Files: map[string]string{}, Issues: res.Issues}
	if j.Written == nil {
		j.Written = []string{}
	}
	if j.Issues == nil {
		j.Issues = []telegraf.Issue{}
	}
	for _, c := range res.Classes {
		j.Classes = append(j.Classes, importClass{c.Name, c.Path, c.Fields})
	}
	if out == "" {
		for _, f := range res.Files() {
			j.Files[f.Path] = string(f.Data)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}
