package harness

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// CheckCertificates runs `monokube certificate check -o json` on the node
// and fails tb unless it exits 0 and lists, with status OK, a certificate
// from a file ending in each of want (the node's kinds of certificate).
func (n *Node) CheckCertificates(tb testing.TB, want ...string) {
	tb.Helper()
	r := n.Exec(time.Minute, Options{}, "certificate", "check", "--data-dir", n.DataDir, "-o", "json")
	var certs []struct {
		File     string `json:"file"`
		Status   string `json:"status"`
		DaysLeft int    `json:"daysLeft"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &certs); r.Code != 0 || err != nil {
		tb.Fatalf("certificate check: exit %d (%v):\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	for _, suffix := range want {
		found := false
		for _, c := range certs {
			if strings.HasSuffix(c.File, suffix) {
				found = true
				if c.Status != "OK" || c.DaysLeft < 300 {
					tb.Errorf("certificate check: %s is %s with %d days left, want OK and a fresh year", c.File, c.Status, c.DaysLeft)
				}
			}
		}
		if !found {
			tb.Errorf("certificate check lists no %s among %d certificates", suffix, len(certs))
		}
	}
}
