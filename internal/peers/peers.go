// Package peers locates the third-party programs that compatibility tests
// run against (kcat, node packages, Modbus tools). Without a peer a test
// skips with a message naming what to install; with
// FACTORYWIRE_REQUIRE_PEERS=1 (as CI sets it) the test fails instead, so a
// missing install step cannot pass unnoticed.
package peers

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a missing peer from a
// skip into a failure.
const RequireEnv = "FACTORYWIRE_REQUIRE_PEERS"

// Program returns the path of the named program, or skips (fails when
// RequireEnv is "1") with install as the hint.
func Program(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, name+" is not installed; "+install)
	return ""
}

// Missing reports a missing peer: a skip, or a failure under RequireEnv.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1 requires every test peer)", why, RequireEnv)
	}
	t.Skip(why)
}
