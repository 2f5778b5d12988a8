// Package peers locates the third-party programs that compatibility tests
// run against (kcat, node packages, Python packages, Apache Kafka's jars,
// Modbus tools). Without a peer a test skips with a message naming what to
// install; with FACTORYWIRE_REQUIRE_PEERS=1 (as CI sets it) the test fails
// instead, so a missing install step cannot pass unnoticed.
package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// KafkaLibsEnv overrides where KafkaLibs looks for Apache Kafka's jars.
const KafkaLibsEnv = "FACTORYWIRE_KAFKA_LIBS"

// KafkaFetch is the command that fetches Apache Kafka's jars (the broker,
// kafka-clients and a log4j binding, versions pinned by the pom) into
// .peers/kafka/libs.
const KafkaFetch = "mvn -q -f internal/kafkatest/testdata/pom.xml dependency:copy-dependencies"

// KafkaLibs returns the folder of Apache Kafka's jars, for a java
// classpath of KafkaLibs(t)+"/*", and the path of java, as FindKafka finds
// them. Without java or the jars it skips (fails under RequireEnv),
// naming what to install or the command to run.
func KafkaLibs(t testing.TB) (libs, java string) {
	t.Helper()
	libs, java, err := FindKafka()
	if err != nil {
		Missing(t, err.Error())
	}
	return libs, java
}

// FindKafka returns the folder of Apache Kafka's jars and the path of java,
// for a program that is not a test: the folder is $FACTORYWIRE_KAFKA_LIBS,
// or .peers/kafka/libs at the root of the module holding the working
// directory. Its error names what to install or the command that fetches
// the jars.
func FindKafka() (libs, java string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", errors.New("java is not installed; install a Java 17 runtime (apt-get install openjdk-17-jre-headless)")
	}
	libs = os.Getenv(KafkaLibsEnv)
	if libs == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", "", fmt.Errorf("Apache Kafka's jars: %w; set %s to their folder", err, KafkaLibsEnv)
		}
		libs = filepath.Join(root, ".peers", "kafka", "libs")
	}
	if matches, _ := filepath.Glob(filepath.Join(libs, "kafka_2.13-*.jar")); len(matches) == 0 {
		return "", "", fmt.Errorf("Apache Kafka's jars are not in %s; fetch them from the repository root with: %s", libs, KafkaFetch)
	}
	return libs, java, nil
}

// moduleRoot is the nearest folder above the working directory (a test's
// package folder) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// PythonPathEnv overrides where ConfluentKafka and Pymodbus look for the
// Python packages (a PYTHONPATH).
const PythonPathEnv = "FACTORYWIRE_PYTHON_PEERS"

// PythonInstall is the command that installs the Python peers, pinned by
// broker/testdata/librdkafka/requirements.txt (confluent-kafka) and
// devices/modbus/testdata/pymodbus/requirements.txt (pymodbus, pyserial),
// from the repository root into .peers/python (as .ci/run does). It is one
// pip invocation: a second --target install into the same folder would
// replace what the first put there.
const PythonInstall = "python3 -m pip install --upgrade --target .peers/python" +
	" -r broker/testdata/librdkafka/requirements.txt -r devices/modbus/testdata/pymodbus/requirements.txt"

// ConfluentKafkaInstall is the command that installs confluent-kafka:
// PythonInstall.
const ConfluentKafkaInstall = PythonInstall

// Python is a Python 3 interpreter that imports a peer package:
// confluent-kafka, Confluent's Python client, whose wheels bundle
// librdkafka (ConfluentKafka), or pymodbus (Pymodbus).
type Python struct {
	// Program is the path of python3.
	Program string
	// Path is the folder the package is installed in: the PYTHONPATH of
	// every command of Command.
	Path string
	// Version is the package's version; Librdkafka, for confluent-kafka,
	// that of the librdkafka it loaded (confluent_kafka.libversion()).
	Version, Librdkafka string
}

// Command returns a command running python3 with args and Path on
// PYTHONPATH; ctx kills it.
func (p Python) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Program, args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+p.Path, "PYTHONDONTWRITEBYTECODE=1")
	return cmd
}

// ConfluentKafka returns python3 with confluent-kafka as FindConfluentKafka
// finds them, or skips (fails under RequireEnv) naming the command that
// installs them.
func ConfluentKafka(t testing.TB) Python {
	t.Helper()
	p, err := FindConfluentKafka()
	if err != nil {
		Missing(t, err.Error())
	}
	return p
}

// FindConfluentKafka returns python3 and the versions of the confluent-kafka
// it imports from $FACTORYWIRE_PYTHON_PEERS, or .peers/python at the root
// of the module holding the working directory. Its error names what to
// install or the command that installs the package.
func FindConfluentKafka() (Python, error) {
	// version() is a (string, int) tuple before confluent-kafka 2.16, a
	// string from then on.
	p, out, err := findPython("confluent_kafka", "import confluent_kafka as ck; v = ck.version(); "+
		"print(v[0] if isinstance(v, tuple) else v, ck.libversion()[0])")
	if err != nil {
		return Python{}, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return Python{}, fmt.Errorf("%s: confluent_kafka printed %q, want its version and librdkafka's", p.Program, out)
	}
	p.Version, p.Librdkafka = f[0], f[1]
	return p, nil
}

// Pymodbus returns python3 with pymodbus as FindPymodbus finds them, or
// skips (fails under RequireEnv) naming the command that installs them.
func Pymodbus(t testing.TB) Python {
	t.Helper()
	p, err := FindPymodbus()
	if err != nil {
		Missing(t, err.Error())
	}
	return p
}

// FindPymodbus returns python3 and the version of the pymodbus it imports
// (with pyserial, which its serial servers need) from
// $FACTORYWIRE_PYTHON_PEERS, or .peers/python at the root of the module
// holding the working directory. Its error names what to install or the
// command that installs the packages.
func FindPymodbus() (Python, error) {
	p, out, err := findPython("pymodbus", "import pymodbus, serial; print(pymodbus.__version__)")
	if err != nil {
		return Python{}, err
	}
	if p.Version = strings.TrimSpace(out); p.Version == "" || strings.ContainsAny(p.Version, " \n") {
		return Python{}, fmt.Errorf("%s: pymodbus printed %q, want its version", p.Program, out)
	}
	return p, nil
}

// findPython finds python3 and the peers' folder, and runs script there,
// returning what it printed. Its error names module and the command that
// installs the Python peers.
func findPython(module, script string) (Python, string, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return Python{}, "", fmt.Errorf("python3 is not installed; install Python 3 with pip (apt-get install python3-pip), then %s with: %s", module, PythonInstall)
	}
	p := Python{Program: python, Path: os.Getenv(PythonPathEnv)}
	if p.Path == "" {
		root, err := moduleRoot()
		if err != nil {
			return Python{}, "", fmt.Errorf("%s: %w; set %s to the folder it is installed in", module, err, PythonPathEnv)
		}
		p.Path = filepath.Join(root, ".peers", "python")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := p.Command(ctx, "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		last := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		return Python{}, "", fmt.Errorf("%s cannot import %s from %s (%v: %s); install it from the repository root with: %s",
			python, module, p.Path, err, last, PythonInstall)
	}
	return p, string(out), nil
}

// TelegrafEnv overrides where Telegraf looks for the telegraf binary.
const TelegrafEnv = "FACTORYWIRE_TELEGRAF"

// TelegrafInstall is the command that builds Telegraf v1.37.2 with its
// Modbus input and file output (the peer of the Telegraf import's
// differential test) into .peers/telegraf, from the Go module proxy.
const TelegrafInstall = "GOBIN=$PWD/.peers/telegraf go install -tags custom,inputs.modbus,outputs.file github.com/influxdata/telegraf/cmd/telegraf@v1.37.2"

// Telegraf returns the path of the telegraf binary: $FACTORYWIRE_TELEGRAF,
// or .peers/telegraf/telegraf at the module root. Without it the test skips
// (fails under RequireEnv), naming the command that builds it.
func Telegraf(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(TelegrafEnv)
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			Missing(t, fmt.Sprintf("telegraf: %v; set %s to a Telegraf v1.37.2 binary", err, TelegrafEnv))
			return ""
		}
		bin = filepath.Join(root, ".peers", "telegraf", "telegraf")
	}
	if _, err := os.Stat(bin); err != nil {
		Missing(t, fmt.Sprintf("telegraf (v1.37.2, with inputs.modbus and outputs.file) is not at %s; build it from the repository root with: %s (or set %s)", bin, TelegrafInstall, TelegrafEnv))
	}
	return bin
}
