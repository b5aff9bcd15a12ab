package apilb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// State is what the balancer knows, as it writes it to its state file
// whenever the list, a server's health or the current server changes:
// what `monokube servers` prints, and the list a restart starts from (so
// a node whose joined server is gone still finds the others).
type State struct {
	Listen  string        `json:"listen"`
	Current string        `json:"current,omitempty"` // the server connections go to now
	Updated time.Time     `json:"updated"`
	Servers []ServerState `json:"servers"`
}

// ServerState is one server in State.
type ServerState struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	// Joined marks the server the node joined, kept as the last resort.
	Joined bool `json:"joined,omitempty"`
	// Connections carried to the server when the state was written.
	Connections int    `json:"connections"`
	LastError   string `json:"lastError,omitempty"`
}

// LoadState reads the state file at path.
func LoadState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("no %s: this node has no apiserver load balancer (a server's node uses its own apiserver), or its agent never started", path)
	}
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("the load balancer's state in %s is damaged (the agent rewrites it at its next start): %w", path, err)
	}
	return st, nil
}

// Addresses lists the servers in st.
func (st State) Addresses() []string {
	out := make([]string, 0, len(st.Servers))
	for _, s := range st.Servers {
		out = append(out, s.Address)
	}
	return out
}
