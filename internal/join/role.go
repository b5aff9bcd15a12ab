package join

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is what a join token lets a machine join as.
type Role string

const (
	// RoleAgent tokens join agents: they may create a node CSR and read
	// the cluster settings. The server's own token (<data-dir>/server/token)
	// is one.
	RoleAgent Role = "agent"
	// RoleServer tokens join servers. A server learns the cluster's keys
	// with one, so they expire soon by default, and they also join agents.
	RoleServer Role = "server"
)

// ServersGroup is the extra group of server tokens, beside NodesGroup.
const ServersGroup = "system:bootstrappers:monokube:servers"

// ParseRole reads --role.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleAgent, RoleServer:
		return r, nil
	}
	return "", fmt.Errorf("--role %q: want %s or %s", s, RoleAgent, RoleServer)
}

// DefaultTTL is how long a token of r works unless told: a day for an
// agent token, an hour for a server token.
func (r Role) DefaultTTL() time.Duration {
	if r == RoleServer {
		return time.Hour
	}
	return 24 * time.Hour
}

// CheckTTL refuses a TTL a token of r may not have: a negative one, and a
// server token that never expires (it gives the cluster's CA keys).
func (r Role) CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < 0:
		return fmt.Errorf("--ttl %s is negative: give a duration such as %s", ttl, r.DefaultTTL())
	case ttl == 0 && r == RoleServer:
		return fmt.Errorf("--ttl 0: a server token gives the cluster's CA keys to whoever holds it, so it must expire; give a duration such as %s (make another when it has)", r.DefaultTTL())
	}
	return nil
}

// groups are the token's extra groups, as the bootstrap Secret lists them.
func (r Role) groups() []string {
	if r == RoleServer {
		return []string{NodesGroup, ServersGroup}
	}
	return []string{NodesGroup}
}

// roleOf reads a stored token's role from its extra groups.
func roleOf(groups string) Role {
	if slices.Contains(strings.Split(groups, ","), ServersGroup) {
		return RoleServer
	}
	return RoleAgent
}
