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

// deleteScript turns iptables-save output into iptables-restore --noflush
// input that removes the node's chains, the rules in them and every rule
// elsewhere that jumps or goes to one of them, and touches nothing else: a
// rule another daemon adds meanwhile stays. Per table, a declaration
// flushes each node chain, -D deletes each jump to one from another chain,
// and -X deletes the chains. It reports whether there is anything to do.
func deleteScript(saved string) (string, bool) {
	var b strings.Builder
	var table string
	var chains, deletes []string
	for _, line := range strings.Split(saved, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(f[0], "*"):
			table, chains, deletes = f[0][1:], nil, nil
		case strings.HasPrefix(f[0], ":") && nodeChain(f[0][1:]):
			chains = append(chains, f[0][1:])
		case f[0] == "-A" && len(f) > 1 && !nodeChain(f[1]) && jumpsToNode(f):
			deletes = append(deletes, "-D"+strings.TrimSpace(line)[2:])
		case f[0] == "COMMIT" && len(chains)+len(deletes) > 0:
			writeTable(&b, table, chains, deletes)
		}
	}
	return b.String(), b.Len() > 0
}

// jumpsToNode reports whether the rule's target is one of the node's
// chains.
func jumpsToNode(f []string) bool {
	for i := 2; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && nodeChain(f[i+1]) {
			return true
		}
	}
	return false
}

func writeTable(b *strings.Builder, table string, chains, deletes []string) {
	b.WriteString("*" + table + "\n")
	for _, c := range chains {
		b.WriteString(":" + c + " - [0:0]\n")
	}
	for _, d := range deletes {
		b.WriteString(d + "\n")
	}
	for _, c := range chains {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
}
