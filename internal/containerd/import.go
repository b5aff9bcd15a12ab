package containerd

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
)

// ImportedLabel marks an image `monokube images import` imported. Such
// images are pinned as well, so the kubelet's garbage collection never
// removes a copy that other nodes pull from.
const ImportedLabel = "monokube.io/imported"

// Import imports the image tarball at path into the running containerd
// of a node (its socket and the config it runs with), pinned, and unpacks
// it for the CRI's snapshotter; it returns the image names.
func Import(ctx context.Context, socket, configFile, path string) ([]string, error) {
	snapshotter, err := criSnapshotter(configFile)
	if err != nil {
		return nil, err
	}
	c, err := client.New(socket, client.WithDefaultNamespace(Namespace))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s (does the node run?): %w", socket, err)
	}
	defer c.Close()
	labels := maps.Clone(pinnedLabels)
	labels[ImportedLabel] = "true"
	im := &Images{ImageSources: ImageSources{Snapshotter: snapshotter}, log: slog.New(slog.DiscardHandler)}
	names, err := im.importPath(namespaces.WithNamespace(ctx, Namespace), c, path, labels)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return names, nil
}

// criSnapshotter is the snapshotter the CRI unpacks images for, in the
// containerd config Render wrote.
func criSnapshotter(configFile string) (string, error) {
	data, err := os.ReadFile(configFile)
	if err != nil {
		return "", fmt.Errorf("read the node's containerd config: %w", err)
	}
	var cfg struct {
		Plugins map[string]struct {
			Snapshotter string `toml:"snapshotter"`
		} `toml:"plugins"`
	}
	if err := toml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s: %w", configFile, err)
	}
	if s := cfg.Plugins["io.containerd.cri.v1.images"].Snapshotter; s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%s names no snapshotter for the CRI's images", configFile)
}
