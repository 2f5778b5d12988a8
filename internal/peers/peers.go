// Package peers locates the third-party programs that compatibility tests
// run against (kcat, node packages, Modbus tools). Without a peer a test
// skips with a message naming what to install; with
// FACTORYWIRE_REQUIRE_PEERS=1 (as CI sets it) the test fails instead, so a
// missing install step cannot pass unnoticed.
package peers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
