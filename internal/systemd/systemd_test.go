package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/testutil"
)

func TestRenderGolden(t *testing.T) {
	// The default units are the ones scripts/ ships for hand installs.
	for _, c := range []struct {
		u      Unit
		golden string
	}{
		{Unit{Role: Server, Binary: "/usr/local/bin/monokube"}, "../../scripts/monokube.service"},
		{Unit{Role: Agent, Binary: "/usr/local/bin/monokube"}, "../../scripts/monokube-agent.service"},
		{Unit{Role: Agent, Binary: "/opt/bin/monokube", Config: "/etc/monokube/agent.yaml"}, "testdata/agent-config.service.golden"},
	} {
		u := c.u
		got, err := Render(u)
		if err != nil {
			t.Fatal(err)
		}
		testutil.GoldenFile(t, c.golden, got)
		for _, want := range []string{"Type=notify", "KillMode=process", "Delegate=yes", "Restart=always"} {
			if !strings.Contains(string(got), "\n"+want+"\n") {
				t.Errorf("%s: no %q line", u.Role.UnitName(), want)
			}
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	if _, err := Render(Unit{Role: "worker", Binary: "/bin/monokube"}); err == nil {
		t.Error("unknown role rendered")
	}
	if _, err := Render(Unit{Role: Server, Binary: "monokube"}); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative binary: %v", err)
	}
}

func TestNotify(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	t.Setenv(pendingSocketEnv, "")
	if err := TakeNotifier().Ready(); err != nil {
		t.Errorf("Ready outside systemd: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv(NotifySocketEnv, sock)
	t.Setenv(pendingSocketEnv, "")
	n := TakeNotifier()
	if v, set := os.LookupEnv(NotifySocketEnv); set {
		t.Errorf("$%s still %q after TakeNotifier: in-process code could notify systemd early", NotifySocketEnv, v)
	}
	// A restart in place before readiness takes the socket again.
	if again := TakeNotifier(); again.socket != sock {
		t.Errorf("TakeNotifier run again before READY=1: socket %q, want %q", again.socket, sock)
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if v, set := os.LookupEnv(pendingSocketEnv); set {
		t.Errorf("$%s still %q after READY=1: a restart would notify again", pendingSocketEnv, v)
	}
	buf := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := conn.Read(buf)
	if err != nil || string(buf[:got]) != "READY=1" {
		t.Errorf("got %q, %v; want READY=1", buf[:got], err)
	}
}
