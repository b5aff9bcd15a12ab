package killall

import "strings"

// chainPrefixes name the chains a node's components create: kube-proxy and
// the kubelet (KUBE-), flannel (FLANNEL-), the CNI plugins (CNI-).
var chainPrefixes = []string{"KUBE-", "FLANNEL-", "CNI-"} //nolint:gochecknoglobals // fixed table

func nodeChain(name string) bool {
	for _, p := range chainPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// withoutNodeRules drops, from iptables-save output, the node's chains, the
// rules in them and every rule that jumps or goes to one of them. It
// reports whether anything was dropped.
func withoutNodeRules(saved string) (string, bool) {
	var b strings.Builder
	changed := false
	for _, line := range strings.SplitAfter(saved, "\n") {
		if dropLine(strings.TrimSpace(line)) {
			changed = true
			continue
		}
		b.WriteString(line)
	}
	return b.String(), changed
}

func dropLine(line string) bool {
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
		return false
	case strings.HasPrefix(f[0], ":"):
		return nodeChain(strings.TrimPrefix(f[0], ":"))
	case f[0] == "-A" && len(f) > 1:
		if nodeChain(f[1]) {
			return true
		}
		for i := 2; i+1 < len(f); i++ {
			if (f[i] == "-j" || f[i] == "-g") && nodeChain(f[i+1]) {
				return true
			}
		}
	}
	return false
}
