package cli

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/datadir"
)

// told is what command c was told about where the node is, for
// datadir's rule; root is install's staging root, else "".
func told(c *cli.Context, root string) datadir.Told {
	return datadir.Told{
		Flag:   func(name string) (string, bool) { return c.String(name), c.IsSet(name) },
		Getenv: os.Getenv,
		Root:   root,
	}
}

// locatedFlags is c's command line with the data and run dir replaced by
// the ones datadir's rule chose, for config.Overlay.
type locatedFlags struct {
	*cli.Context
	dirs datadir.Layout
}

func (f locatedFlags) IsSet(name string) bool {
	return name == "data-dir" || name == "run-dir" || f.Context.IsSet(name)
}

func (f locatedFlags) String(name string) string {
	switch name {
	case "data-dir":
		return f.dirs.Data
	case "run-dir":
		return f.dirs.Run
	}
	return f.Context.String(name)
}
