package telegraf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says whether an Issue needs a look.
type Severity string

// The severities.
const (
	// Warning: something Telegraf did is not done, or not done the same
	// way: a setting or field not carried over, a value that differs, a
	// name changed to resolve a clash.
	Warning Severity = "warning"
	// Note: carried over with a change of form only (0/1 becomes
	// false/true, a name is made to fit the grammar), or a setting with no
	// effect on the samples (an output plugin, log_level).
	Note Severity = "note"
)

// Kind says what happened to a setting.
type Kind string

// The kinds.
const (
	// Dropped: not carried over.
	Dropped Kind = "not_carried_over"
	// Changed: carried over, with a difference the message describes.
	Changed Kind = "changed"
	// Renamed: carried over under another name.
	Renamed Kind = "renamed"
	// Mapped: how a setting was carried over, for the record.
	Mapped Kind = "mapped"
)

// Issue is one line of the import report: a Telegraf setting, section or
// field, where it is, and what became of it.
type Issue struct {
	File     string   `json:"file"`
	Line     int      `json:"line"` // 1-based; 0 when unknown
	Severity Severity `json:"severity"`
	Kind     Kind     `json:"kind"`
	// Where names the setting as Telegraf's config does:
	// `inputs.modbus "Device" holding_registers "energy"`.
	Where   string `json:"where"`
	Message string `json:"message"`
}

// String formats the issue as a compiler does:
//
//	telegraf.conf:47: warning: inputs.modbus "Device" holding_registers "firmware": not carried over: ...
func (i Issue) String() string {
	pos := i.File
	if i.Line > 0 {
		pos += ":" + fmt.Sprint(i.Line)
	}
	what := ""
	switch i.Kind {
	case Dropped:
		what = "not carried over: "
	case Changed:
		what = "changed: "
	case Renamed:
		what = "renamed: "
	}
	where := ""
	if i.Where != "" {
		where = i.Where + ": "
	}
	return fmt.Sprintf("%s: %s: %s%s%s", pos, i.Severity, where, what, i.Message)
}

// sortIssues orders issues by line, keeping the order they were found in
// for one line.
func sortIssues(issues []Issue) {
	slices.SortStableFunc(issues, func(a, b Issue) int {
		return cmp.Compare(a.Line, b.Line)
	})
}

// Warnings counts the issues of severity Warning.
func (r *Result) Warnings() int {
	n := 0
	for _, i := range r.Issues {
		if i.Severity == Warning {
			n++
		}
	}
	return n
}

// Summary is one line saying what the import produced.
func (r *Result) Summary() string {
	notes := len(r.Issues) - r.Warnings()
	if !r.Importable() {
		return fmt.Sprintf("nothing importable: no [[inputs.modbus]] field could be carried over (%d warnings, %d notes)", r.Warnings(), notes)
	}
	fields := 0
	for _, c := range r.Classes {
		fields += c.Fields
	}
	names := make([]string, len(r.Classes))
	for i, c := range r.Classes {
		names[i] = c.Name
	}
	return fmt.Sprintf("%d devices on %d connections, %d classes (%s) with %d fields; %d warnings, %d notes",
		r.Devices, r.Connections, len(r.Classes), strings.Join(names, ", "), fields, r.Warnings(), notes)
}
