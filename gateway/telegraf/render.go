package telegraf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// plainScalar matches strings YAML reads back as the same string without
// quotes; anything else is written double-quoted.
var plainScalar = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./:@-]*$`)

// yamlWords are plain scalars YAML 1.1 or 1.2 reads as something else.
var yamlWords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true,
	"y": true, "n": true, "null": true, "Null": true, "NULL": true, "True": true, "False": true, "TRUE": true, "FALSE": true,
	"Yes": true, "No": true, "YES": true, "NO": true, "On": true, "Off": true, "ON": true, "OFF": true, "Y": true, "N": true}

// yamlString writes s as a YAML scalar that reads back as s.
func yamlString(s string) string {
	if plainScalar.MatchString(s) && !yamlWords[s] && !strings.HasSuffix(s, ":") {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a JSON string is a YAML double-quoted scalar
	return strings.TrimSuffix(b.String(), "\n")
}

// comment makes text safe for a YAML comment line.
func comment(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func formatDuration(d time.Duration) string { return d.String() }

// renderFields writes a register map's max_gap and fields; with comments,
// each field is preceded by the Telegraf declaration it comes from.
func renderFields(file string, fields []*field, maxGap int, comments bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "max_gap: %d\n", maxGap)
	b.WriteString("fields:\n")
	for _, f := range fields {
		if comments {
			fmt.Fprintf(&b, "  # %s:%d: %s\n", file, f.line, comment(f.src))
		}
		fmt.Fprintf(&b, "  - name: %s\n", f.Name)
		fmt.Fprintf(&b, "    table: %s\n", f.Table)
		fmt.Fprintf(&b, "    address: %d\n", f.Address)
		fmt.Fprintf(&b, "    type: %s\n", f.Type)
		if f.Type == devices.TypeBool && !f.Table.Bits() {
			fmt.Fprintf(&b, "    bit: %d\n", f.Bit)
		}
		if f.Type == devices.TypeString {
			fmt.Fprintf(&b, "    length: %d\n", f.Length)
		}
		if f.Order != devices.OrderABCD && f.Type != devices.TypeBool {
			fmt.Fprintf(&b, "    order: %s\n", f.Order)
		}
		if f.Scale != 1 && f.Scale != 0 {
			fmt.Fprintf(&b, "    scale: %s\n", formatFloat(f.Scale))
		}
	}
	return b.String()
}

// classBody is what makes two devices' register maps the same class.
func classBody(fields []*field, maxGap int) string { return renderFields("", fields, maxGap, false) }

// renderClass writes the register-map file of class name, from device d.
func renderClass(file, cname string, d *device) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Register map imported by `gateway import-telegraf` from %s\n", comment(file))
	fmt.Fprintf(&b, "# (%s, line %d: measurement %s). The comment above each field\n", comment(d.from), d.line, comment(strconv.Quote(d.measurement)))
	b.WriteString("# names the Telegraf declaration it comes from. Format: devices/doc.go.\n")
	fmt.Fprintf(&b, "class: %s\n", cname)
	fmt.Fprintf(&b, "description: %s\n", yamlString("imported from Telegraf: measurement "+d.measurement))
	if d.maxGap == 0 {
		b.WriteString("# 0: read only the registers of fields, as Telegraf does without request optimization.\n")
	}
	b.WriteString(renderFields(file, d.fields, d.maxGap, true))
	return []byte(b.String())
}

// renderGateway writes gateway.yaml.
func renderGateway(im *importer, conns []*conn) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# factorywire gateway config imported by `gateway import-telegraf` from %s.\n", comment(im.file))
	b.WriteString("# The import report lists every setting that was not carried over. Check it with\n")
	b.WriteString("#   gateway check --config gateway.yaml\n")
	b.WriteString("# Every key and its default: configs/gateway.yaml.\n")
	fmt.Fprintf(&b, "factory: %s\n", yamlString(im.opts.Factory))
	fmt.Fprintf(&b, "data_dir: %s\n", yamlString(im.opts.DataDir))
	b.WriteString("classes_dir: devices\n\n")
	b.WriteString("kafka:\n")
	if len(im.brokers) > 0 {
		quoted := make([]string, len(im.brokers))
		for i, s := range im.brokers {
			quoted[i] = yamlString(s)
		}
		fmt.Fprintf(&b, "  brokers: [%s]   # %s:%d: [[outputs.kafka]] brokers\n", strings.Join(quoted, ", "), comment(im.file), im.kafkaLine)
	} else {
		b.WriteString("  brokers: [127.0.0.1:9092]   # the default: set your brokers\n")
	}
	b.WriteString("\nconnections:\n")
	for _, c := range conns {
		fmt.Fprintf(&b, "  # %s:%d: %s\n", comment(im.file), c.line, comment(c.from))
		fmt.Fprintf(&b, "  - name: %s\n", yamlString(c.name))
		fmt.Fprintf(&b, "    transport: %s\n", yamlString(c.transport))
		fmt.Fprintf(&b, "    address: %s\n", yamlString(c.address))
		ints := []struct {
			key string
			v   int
		}{{"baud_rate", c.baudRate}, {"data_bits", c.dataBits}}
		for _, kv := range ints {
			if kv.v != 0 {
				fmt.Fprintf(&b, "    %s: %d\n", kv.key, kv.v)
			}
		}
		if c.parity != "" {
			fmt.Fprintf(&b, "    parity: %s\n", c.parity)
		}
		if c.stopBits != 0 {
			fmt.Fprintf(&b, "    stop_bits: %d\n", c.stopBits)
		}
		if c.timeout != 0 {
			fmt.Fprintf(&b, "    timeout: %s\n", formatDuration(c.timeout))
		}
		if c.busyTries != 0 {
			fmt.Fprintf(&b, "    busy_tries: %d\n", c.busyTries)
		}
		if c.busyBackoff != 0 {
			fmt.Fprintf(&b, "    busy_backoff: %s\n", formatDuration(c.busyBackoff))
		}
		if c.pauseBetweenRequests != 0 {
			fmt.Fprintf(&b, "    pause_between_requests: %s\n", formatDuration(c.pauseBetweenRequests))
		}
		if c.pauseAfterConnect != 0 {
			fmt.Fprintf(&b, "    pause_after_connect: %s\n", formatDuration(c.pauseAfterConnect))
		}
		if c.closeAfterScan {
			b.WriteString("    close_after_scan: true\n")
		}
	}
	b.WriteString("\ndevices:\n")
	for _, d := range im.devs {
		fmt.Fprintf(&b, "  # %s:%d: %s, slave %d, measurement %s\n", comment(im.file), d.line, comment(d.from), d.unit, comment(strconv.Quote(d.measurement)))
		fmt.Fprintf(&b, "  - id: %s\n", yamlString(d.id))
		fmt.Fprintf(&b, "    class: %s\n", d.class)
		fmt.Fprintf(&b, "    connection: %s\n", yamlString(d.conn.name))
		fmt.Fprintf(&b, "    unit: %d\n", d.unit)
		fmt.Fprintf(&b, "    interval: %s\n", formatDuration(d.interval))
		if len(d.tags) > 0 {
			b.WriteString("    tags:\n")
			for _, k := range sortedKeys(d.tags) {
				fmt.Fprintf(&b, "      %s: %s\n", yamlString(k), yamlString(d.tags[k]))
			}
		}
	}
	return []byte(b.String())
}
