package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GuardHostSysctls records the host's values of the masked kernel tunables
// and fails the test at cleanup if any changed: proof that no node wrote
// through to the host.
func GuardHostSysctls(t testing.TB) {
	t.Helper()
	before := hostSysctls(t)
	t.Cleanup(func() {
		after := hostSysctls(t)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("host kernel tunable %s changed from %s to %s: a node escaped its mount namespace", k, v, after[k])
			}
		}
	})
}

func hostSysctls(t testing.TB) map[string]string {
	out := map[string]string{}
	for k := range maskedSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			t.Fatalf("read host sysctl %s: %v", k, err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
}

// RequireRoot skips the test when not root, unless E2E=1 (CI), where a
// missing precondition is a failure rather than a silent skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("E2E") == "1" {
		t.Fatal("e2e tests need root (E2E=1 is set, so this is a failure, not a skip)")
	}
	t.Skip("e2e tests need root")
}
