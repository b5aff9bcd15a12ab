package containerd

import (
	"context"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	// CRI, the overlayfs and native snapshotters, the runc v2 shim manager
	// and the rest of containerd's standard plugins.
	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
)

// Main is containerd's own main, run by the hidden `monokube containerd`
// subcommand in the child process the node supervises. args are
// containerd's flags.
func Main(ctx context.Context, args []string) error {
	return command.App().Run(ctx, append([]string{"containerd"}, args...))
}
