package demo

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestStartFails: a demo that cannot start returns an error naming the
// cause, stops what it had started and removes its temporary directory,
// instead of crashing in its own clean-up.
func TestStartFails(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no register maps", Config{ClassesDir: filepath.Join(tmp, "nowhere")}, "register maps"},
		{"unknown class", Config{ClassesDir: "../../configs/devices", Classes: []string{"lathe"}}, `class "lathe"`},
		{"broker cannot listen", Config{ClassesDir: "../../configs/devices", BrokerListen: "127.0.0.1:-1"}, "127.0.0.1:-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Start(tc.cfg)
			if err == nil {
				d.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			left, _ := filepath.Glob(filepath.Join(tmp, "factorywire-demo-*"))
			if len(left) != 0 {
				t.Errorf("temporary directories left: %v", left)
			}
		})
	}
}
