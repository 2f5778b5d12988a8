package gateway

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
)

// ErrStopped is Reload's error once Run has returned.
var ErrStopped = errors.New("gateway: stopped")

// liveKeys are the top-level configuration keys Reload applies. Every
// other key (factory, topic_prefix, data_dir, http_listen, kafka, spool,
// poller, and any key added later unless listed here) keeps its running
// value until a restart.
var liveKeys = map[string]bool{"classes_dir": true, "connections": true, "devices": true, "report_by_exception": true, "tags": true}

// Reload applies the configuration load returns, while Run runs or before
// it starts (`gateway run` calls it on SIGHUP, load reading the config
// file again); source names it, the file's path, in the log and in
// errors. The register maps are read again from classes_dir.
//
// The new configuration is checked as New checks one (Check); if load or
// the check fails, Reload logs the error, counts the failure and returns
// it, and the running configuration stays as it was. Otherwise:
//
//   - a connection whose settings changed (defaults applied) is closed
//     and opened again, and its devices restart; a connection added is
//     opened at its first poll, one removed is closed; the others keep
//     their sockets;
//   - a device whose entry changed in any key (class, connection, unit,
//     schedule, max_registers_per_read, report_by_exception, tags...),
//     whose tags changed by the top-level tags, whose
//     connection restarts, whose class's register map changed (its
//     fields, its max_gap) or whose class's report_by_exception entry
//     changed restarts: it stops, then polls again as configured, its seq
//     going on from where it was (never repeated, no gap), its report by
//     exception starting anew (its first sample is sent); a device added
//     starts, its seq recovered from the spool as at a start; a device
//     removed stops, and its samples already spooled are forwarded. The
//     other devices poll on undisturbed: same connection, same schedule,
//     no missed poll;
//   - a key outside liveKeys that changed is logged at warn level, naming
//     it, and keeps its running value: a reload never half-applies the
//     spool, the producer or the listener. Restart the gateway to change
//     it.
//
// The spool and the forwarder are not touched: what is spooled is
// forwarded in order throughout. One info line sums up what changed.
// Reloads are serialised. Reload returns once the change is applied, and
// ErrStopped once Run has returned; a Reload that Run's end interrupts
// returns the poller's modbus.ErrStopped.
func (g *Gateway) Reload(source string, load func() (Config, error)) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.stopped {
		return ErrStopped
	}
	if err := g.reload(source, load); err != nil {
		if errors.Is(err, modbus.ErrStopped) {
			g.log.Info("config reload interrupted: the gateway is stopping", "config", source)
			return err
		}
		g.metrics.reloads.WithLabelValues("failure").Inc()
		g.metrics.lastReloadOK.Set(0)
		g.log.Error("config reload failed; the running configuration stays", "config", source, "err", err)
		return err
	}
	g.metrics.reloads.WithLabelValues("success").Inc()
	g.metrics.lastReloadOK.Set(1)
	g.metrics.lastReloadSuccess.SetToCurrentTime()
	return nil
}

// reload is Reload under reloadMu, without the accounting.
func (g *Gateway) reload(source string, load func() (Config, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	plan, err := Check(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	cfg, restartKeys := keepRestartKeys(g.cfg, cfg)
	for _, k := range restartKeys {
		g.log.Warn("config reload: this key changes only at a restart; it keeps its running value", "config", source, "key", k)
	}
	classes := make(map[string]*devices.Class, len(plan.Classes))
	for _, c := range plan.Classes {
		classes[c.Name] = c
	}
	old := g.applied

	// Connections, by name, defaults applied.
	oldConns, newConns := connConfigs(old), connConfigs(cfg)
	var connsAdded, connsRemoved, connsRestarted []string
	for _, name := range sortedKeys(newConns) {
		o, ok := oldConns[name]
		switch {
		case !ok:
			connsAdded = append(connsAdded, name)
		case !reflect.DeepEqual(o, newConns[name]):
			connsRestarted = append(connsRestarted, name)
		}
	}
	for _, name := range sortedKeys(oldConns) {
		if _, ok := newConns[name]; !ok {
			connsRemoved = append(connsRemoved, name)
		}
	}
	var classesChanged []string
	for _, name := range sortedKeys(classes) {
		if c := g.classes[name]; c != nil && !sameRegisterMap(c, classes[name]) {
			classesChanged = append(classesChanged, name)
		}
	}

	// Devices.
	oldDevs := make(map[string]DeviceConfig, len(old.Devices))
	for _, d := range old.Devices {
		oldDevs[d.ID] = d
	}
	var (
		added, removed, restarted []string
		start                     []DeviceConfig // added and restarted, in cfg's order
		newIDs                    = map[string]bool{}
	)
	for _, d := range cfg.Devices {
		newIDs[d.ID] = true
		o, ok := oldDevs[d.ID]
		if !ok {
			added = append(added, d.ID)
			start = append(start, d)
			continue
		}
		why := deviceChanges(o, d)
		if o.Connection == d.Connection && slices.Contains(connsRestarted, d.Connection) {
			why = append(why, "connection "+d.Connection+" settings")
		}
		if o.Class == d.Class && slices.Contains(classesChanged, d.Class) {
			why = append(why, "register map "+d.Class)
		}
		if !sameException(old, cfg, o.Class, d.Class) {
			why = append(why, "report_by_exception."+d.Class)
		}
		if !slices.Contains(why, "tags") && !maps.Equal(old.tags(o), cfg.tags(d)) {
			why = append(why, "top-level tags")
		}
		if len(why) > 0 {
			restarted = append(restarted, fmt.Sprintf("%s (%s)", d.ID, strings.Join(why, ", ")))
			start = append(start, d)
		}
	}
	for _, d := range old.Devices {
		if !newIDs[d.ID] {
			removed = append(removed, d.ID)
		}
	}

	// Build what the change needs before changing anything.
	var next map[string]uint64
	if len(added) > 0 {
		if next, err = g.spool.NextSeqs(); err != nil {
			return fmt.Errorf("recover seqs from the spool: %w", err)
		}
	}
	opened := map[string]*modbus.Conn{}
	closeOpened := func() {
		for _, c := range opened {
			c.Close()
		}
	}
	for _, name := range append(slices.Clone(connsAdded), connsRestarted...) {
		c, err := g.newConn(newConns[name])
		if err != nil {
			closeOpened()
			return err
		}
		opened[name] = c
	}
	var ch modbus.Change
	for _, d := range start {
		conn := opened[d.Connection]
		if conn == nil {
			conn = g.conns[d.Connection]
		}
		ch.Add = append(ch.Add, device(cfg, plan, classes[d.Class], d, conn, next[d.ID]))
		if _, ok := oldDevs[d.ID]; ok {
			ch.Remove = append(ch.Remove, d.ID)
		}
	}
	ch.Remove = append(ch.Remove, removed...)

	// Topics only grow: a removed device's last samples may be emitted
	// during the change.
	topics := maps.Clone(*g.topics.Load())
	for name := range classes {
		topics[name] = cfg.Topic(name)
	}
	g.topics.Store(&topics)
	if len(ch.Add) > 0 || len(ch.Remove) > 0 {
		if err := g.poller.Change(ch); err != nil {
			closeOpened()
			return err
		}
	}
	// No device polls through the connections removed or restarted any
	// more.
	for _, name := range append(connsRemoved, connsRestarted...) {
		g.conns[name].Close()
		delete(g.conns, name)
	}
	maps.Copy(g.conns, opened)
	g.classes = classes
	g.applied = cfg
	schedules := schedulesOf(cfg)
	g.schedules.Store(&schedules)

	attrs := []any{"config", source}
	for _, kv := range []struct {
		key  string
		vals []string
	}{
		{"devices_added", added}, {"devices_removed", removed}, {"devices_restarted", restarted},
		{"connections_added", connsAdded}, {"connections_removed", connsRemoved}, {"connections_restarted", connsRestarted},
		{"register_maps_changed", classesChanged}, {"needs_restart", restartKeys},
	} {
		if len(kv.vals) > 0 {
			attrs = append(attrs, kv.key, strings.Join(kv.vals, ", "))
		}
	}
	msg := "config reloaded"
	if len(attrs) == 2 {
		msg = "config reloaded; nothing changed"
	}
	g.log.Info(msg, attrs...)
	return nil
}

// connConfigs is cfg's connections by name, defaults applied.
func connConfigs(cfg Config) map[string]modbus.ConnConfig {
	out := make(map[string]modbus.ConnConfig, len(cfg.Connections))
	for _, cc := range cfg.Connections {
		cc = cc.WithDefaults()
		out[cc.Name] = cc
	}
	return out
}

// deviceChanges names the keys of a device's entry that differ between o
// and d ("unit", "interval", "report_by_exception"); an unset unit is 1.
func deviceChanges(o, d DeviceConfig) []string {
	unit := func(u *uint8) *uint8 {
		if u == nil {
			one := uint8(1)
			return &one
		}
		return u
	}
	o.Unit, d.Unit = unit(o.Unit), unit(d.Unit)
	return changedKeys("", reflect.ValueOf(o), reflect.ValueOf(d))
}

// sameException reports whether the report_by_exception entry of class
// oldClass in old is the one of newClass in cfg (both absent counts).
func sameException(old, cfg Config, oldClass, newClass string) bool {
	a, okA := old.ReportByException[oldClass]
	b, okB := cfg.ReportByException[newClass]
	return okA == okB && reflect.DeepEqual(a, b)
}

// sameRegisterMap reports whether a and b read and decode the same: every
// exported field of devices.Class but Source and Description is equal.
func sameRegisterMap(a, b *devices.Class) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || f.Name == "Source" || f.Name == "Description" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// keepRestartKeys returns cfg with every top-level key outside liveKeys
// set back to its value in running, and the YAML paths of the keys that
// differed ("kafka.brokers", "spool.max_bytes"), in Config's order.
func keepRestartKeys(running, cfg Config) (Config, []string) {
	rv, cv := reflect.ValueOf(running), reflect.ValueOf(&cfg).Elem()
	var keys []string
	for i := range cv.NumField() {
		f := cv.Type().Field(i)
		name, _ := yamlKey(f)
		if !f.IsExported() || liveKeys[name] {
			continue
		}
		if name != "-" {
			keys = append(keys, changedKeys(name, rv.Field(i), cv.Field(i))...)
		}
		cv.Field(i).Set(rv.Field(i))
	}
	return cfg, keys
}

// changedKeys returns the YAML paths under key where a and b differ: a
// struct with YAML keys is compared key by key (inline structs' keys at
// its level; keys tagged "-" are not compared), anything else as a whole.
func changedKeys(key string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct || !hasYAMLKeys(a.Type()) {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{key}
	}
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, inline := yamlKey(f)
		if !f.IsExported() || name == "-" {
			continue
		}
		sub := key
		if !inline {
			sub = name
			if key != "" {
				sub = key + "." + name
			}
		}
		out = append(out, changedKeys(sub, a.Field(i), b.Field(i))...)
	}
	return out
}

// hasYAMLKeys reports whether t has an exported field YAML decodes.
func hasYAMLKeys(t reflect.Type) bool {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			if name, _ := yamlKey(f); name != "-" {
				return true
			}
		}
	}
	return false
}

// yamlKey is f's YAML key as go.yaml.in/yaml/v3 decodes it (the tag's
// name, else the field's name in lower case) and whether f is inline.
func yamlKey(f reflect.StructField) (name string, inline bool) {
	parts := strings.Split(f.Tag.Get("yaml"), ",")
	name, inline = parts[0], slices.Contains(parts[1:], "inline")
	if name == "" && !inline {
		name = strings.ToLower(f.Name)
	}
	return name, inline
}
