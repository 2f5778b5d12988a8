package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/factorywire/factorywire/topics"
)

// The JSON that `--format json` prints, one object per command run. The
// schema is stable: keys are only ever added, and docs/OPERATIONS.md
// ("Scripting the admin commands") documents each one. A value the cluster
// does not report is null, never a made-up number.

// topicsJSON is `broker topics list|describe --format json`.
type topicsJSON struct {
	Topics []topicJSON `json:"topics"`
}

type topicJSON struct {
	Topic             string           `json:"topic"`
	Prefix            string           `json:"prefix"`
	Factory           string           `json:"factory"`
	Class             string           `json:"class"`
	DLQ               bool             `json:"dlq"`
	Partitions        int              `json:"partitions"`
	ReplicationFactor *int             `json:"replication_factor"`
	MinInsyncReplicas *int             `json:"min_insync_replicas"`
	RetentionMS       *int64           `json:"retention_ms"` // -1: unlimited
	Records           int64            `json:"records"`
	SizeBytes         *int64           `json:"size_bytes"`
	SizeError         *string          `json:"size_error"` // why size_bytes is null
	GroupLag          map[string]int64 `json:"group_lag"`
}

// groupsJSON is `broker groups list --format json`.
type groupsJSON struct {
	Groups []groupJSON `json:"groups"`
}

type groupJSON struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	Lag     int64  `json:"lag"`
}

// groupLagJSON is `broker groups lag|describe --format json`.
type groupLagJSON struct {
	Group      string             `json:"group"`
	State      string             `json:"state"`
	Partitions []partitionLagJSON `json:"partitions"`
}

type partitionLagJSON struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Committed *int64  `json:"committed"` // null: no offset committed
	End       int64   `json:"end"`
	Lag       int64   `json:"lag"`
	Member    *string `json:"member"` // null: no member assigned
}

// formatFlag adds --format to fs.
func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "text", "text (a table, for people) or json (one object, for scripts; the schema is in docs/OPERATIONS.md)")
}

// checkFormat refuses a --format other than text and json.
func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return usageError{Err: fmt.Errorf("--format %q: want text or json", format)}
	}
	return nil
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func topicsToJSON(infos []topics.TopicInfo) topicsJSON {
	out := topicsJSON{Topics: make([]topicJSON, 0, len(infos))}
	for _, t := range infos {
		j := topicJSON{
			Topic: t.Name.String(), Prefix: t.Name.Prefix, Factory: t.Name.Factory, Class: t.Name.Class, DLQ: t.Name.DLQ,
			Partitions: t.Partitions, Records: t.Records, GroupLag: map[string]int64{},
		}
		if t.Replicas > 0 {
			j.ReplicationFactor = &t.Replicas
		}
		if n, err := strconv.Atoi(t.MinInsyncReplicas); err == nil {
			j.MinInsyncReplicas = &n
		}
		if n, err := strconv.ParseInt(t.Retention, 10, 64); err == nil {
			j.RetentionMS = &n
		}
		if t.Bytes >= 0 {
			j.SizeBytes = &t.Bytes
		} else if t.BytesErr != nil {
			why := t.BytesErr.Error()
			j.SizeError = &why
		}
		for g, l := range t.Lag {
			j.GroupLag[g] = l
		}
		out.Topics = append(out.Topics, j)
	}
	return out
}

func groupsToJSON(gs []topics.GroupInfo) groupsJSON {
	out := groupsJSON{Groups: make([]groupJSON, 0, len(gs))}
	for _, g := range gs {
		out.Groups = append(out.Groups, groupJSON{Group: g.Group, State: g.State, Members: g.Members, Lag: g.Lag})
	}
	slices.SortFunc(out.Groups, func(a, b groupJSON) int {
		if a.Group < b.Group {
			return -1
		}
		if a.Group > b.Group {
			return 1
		}
		return 0
	})
	return out
}

func groupLagToJSON(group, state string, parts []topics.PartitionLag) groupLagJSON {
	out := groupLagJSON{Group: group, State: state, Partitions: make([]partitionLagJSON, 0, len(parts))}
	for _, p := range parts {
		j := partitionLagJSON{Topic: p.Topic, Partition: p.Partition, End: p.End, Lag: p.Lag}
		if p.Committed >= 0 {
			j.Committed = &p.Committed
		}
		if p.Member != "" {
			j.Member = &p.Member
		}
		out.Partitions = append(out.Partitions, j)
	}
	return out
}
