package gateway

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/secret"
	"github.com/factorywire/factorywire/topics"
)

// TestGatewayNotAuthorized runs a gateway whose user our broker, with ACLs
// enforced, does not allow to write the factory's topics: it keeps polling
// into the spool, counts the refused produces and logs once, at error
// level, what to grant; once the factory is granted to its user it
// forwards everything, each device's seq without a gap.
func TestGatewayNotAuthorized(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listeners = []broker.ListenerConfig{{Name: "SASL", Address: "127.0.0.1:0", Protocol: "SASL_PLAINTEXT"}}
	cfg.SASL.BootstrapUsers = []broker.BootstrapUser{
		{Name: "admin", Password: secret.New("admin-pw")},
		{Name: "gateway-" + testFactory, Password: secret.New(gwPassword)},
	}
	cfg.Authorization = broker.AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:admin"}}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.ListenerAddr("SASL").String()
	as := func(user, pw string) []kgo.Opt {
		o, err := kafkaclient.Config{Brokers: []string{addr},
			SASL: kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: user, Password: secret.New(pw)}}.Opts(nil)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	admin, err := kgo.NewClient(as("admin", "admin-pw")...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := topics.NewAdmin(admin)
	if _, err := adm.Ensure(ctx, topics.FactorySpec{Factory: testFactory, Classes: []string{"press", "power-meter"}, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, gwPassword+"\n")
	plant.cfg.Kafka.SASL = kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: "gateway-" + testFactory, PasswordFile: pwFile}

	var logs lockedBuffer
	g, stop := runGatewayLogged(t, plant.cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	refused := regexp.MustCompile(`factorywire_gateway_produce_errors_total\{topic="` + regexp.QuoteMeta(testFactory) + `\.press"\} (\d+)`)
	waitFor(t, "refused produces counted", 60*time.Second, func() bool {
		m := refused.FindStringSubmatch(scrape(t, g))
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n >= 2
	})
	waitFor(t, "20 samples spooled", 20*time.Second, func() bool { return g.spool.backlog(false) >= 20 })
	stop()
	log := logs.String()
	lines := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "does not authorize this gateway") && strings.Contains(l, "topic="+testFactory+".press") {
			lines++
			for _, want := range []string{"TOPIC_AUTHORIZATION_FAILED", "User:gateway-" + testFactory, "broker acls grant-factory --factory " + testFactory + " --gateway-user gateway-" + testFactory} {
				if !strings.Contains(l, want) {
					t.Errorf("the log line lacks %q:\n%s", want, l)
				}
			}
		}
	}
	if lines != 1 {
		t.Errorf("%d error lines for %s.press, want 1 (then debug while the cause is the same):\n%s", lines, testFactory, log)
	}

	access := topics.FactoryAccess{Factory: testFactory, GatewayUser: "gateway-" + testFactory}
	if err := adm.CreateACLs(ctx, access.ACLs()); err != nil {
		t.Fatal(err)
	}
	g2, stop2 := runGateway(t, plant.cfg)
	waitFor(t, "the backlog to drain", 60*time.Second, func() bool { return g2.spool.backlog(true) == 0 })
	stop2()
	last, total := polled(g2)
	checkSeqs(t, plant.delivered(t, addr, total, as("admin", "admin-pw")...), plant.devices, last, true)
}
