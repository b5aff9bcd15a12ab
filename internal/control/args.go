package control

import (
	"maps"
	"slices"

	"github.com/monokube/monokube/internal/config"
)

// Flags is a component's command line as key → value, without dashes.
type Flags map[string]string

// Merge builds a component command line: defaults, then the user's
// pass-through args, then the values users must not change (paths and ports
// monokube itself depends on). The result is sorted, so it is stable.
func Merge(defaults Flags, user []config.Arg, forced Flags) []string {
	m := maps.Clone(defaults)
	for _, a := range user {
		m[a.Key] = a.Value
	}
	maps.Copy(m, forced)
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, config.Arg{Key: k, Value: m[k]}.Flag())
	}
	return out
}
