package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/mirror"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/sysreq"
)

func imagesCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "import images into this node, and list which nodes hold which (with --embedded-registry every node pulls them from the others)",
		Subcommands: []*cli.Command{{
			Name: "import",
			Usage: "import image tarballs (docker save or OCI archives) into this node's containerd, pinned so the kubelet keeps them; " +
				"with the embedded registry mirror on, every node can then run them",
			ArgsUsage: "FILE...",
			Flags:     dirFlags("node"),
			Action:    func(c *cli.Context) error { return importImages(c, stdout) },
		}, {
			Name:   "ls",
			Usage:  "list the images every node holds, asking each node's registry mirror (needs --embedded-registry); exits non-zero if a node does not answer",
			Flags:  append(dirFlags("node"), outputFlag("table", "json")),
			Action: func(c *cli.Context) error { return listImages(c, stdout, stderr) },
		}},
	}
}

// localNode is the layout and credentials of the node on this machine.
func localNode(c *cli.Context, cmd string) (datadir.Layout, node.Creds, error) {
	if err := sysreq.OS().Root(cmd); err != nil {
		return datadir.Layout{}, node.Creds{}, err
	}
	nf, err := nodeFiles(c, "")
	if err != nil {
		return datadir.Layout{}, node.Creds{}, err
	}
	l := datadir.Layout{Data: nf.DataDir, Run: nf.RunDir}
	switch {
	case fsutil.Exists(control.NewCreds(l).ServerCA.Cert()):
		creds := node.NewCreds(l)
		if !fsutil.Exists(creds.KubeletKubeconfig) {
			return l, creds, fmt.Errorf("the server in data dir %s runs no node (--disable-agent): run this on a node of the cluster", l.Data)
		}
		return l, creds, nil
	case fsutil.Exists(node.NewAgentCreds(l).KubeletKubeconfig):
		return l, node.NewAgentCreds(l), nil
	}
	return l, node.Creds{}, fmt.Errorf("no server or agent in data dir %s: run this on a node, as root, or give its --data-dir or --config", l.Data)
}

func importImages(c *cli.Context, stdout io.Writer) error {
	if c.NArg() == 0 {
		return fmt.Errorf("give the image tarballs to import: monokube images import FILE")
	}
	l, _, err := localNode(c, "images import")
	if err != nil {
		return err
	}
	for _, path := range c.Args().Slice() {
		names, err := containerd.Import(c.Context, l.ContainerdSocket(), node.ContainerdConfigFile(l), path)
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintf(stdout, "imported %s\n", n)
		}
	}
	return nil
}

// heldImage is an image and the nodes that hold it.
type heldImage struct {
	Name   string   `json:"name"`
	Digest string   `json:"digest"`
	Nodes  []string `json:"nodes"`
	// Partial are the nodes that hold some of its content only: they
	// cannot run it or serve it whole.
	Partial []string `json:"partial,omitempty"`
}

func listImages(c *cli.Context, stdout, stderr io.Writer) error {
	out, err := outputFormat(c, "table", "json")
	if err != nil {
		return err
	}
	l, creds, err := localNode(c, "images ls")
	if err != nil {
		return err
	}
	nodes, err := listNodes(c.Context, creds.KubeletKubeconfig)
	if err != nil {
		return err
	}
	files := node.NewMirrorFiles(l, creds)
	mc, err := mirror.NewClient(files.ServingCA, files.ClientCert, files.ClientKey)
	if err != nil {
		return err
	}
	defer mc.Close()
	held, failed := askMirrors(c.Context, mc, nodes)
	if out == "json" {
		err = printData(stdout, out, held)
	} else {
		err = printHeld(stdout, held)
	}
	if err != nil {
		return err
	}
	for _, f := range failed {
		fmt.Fprintln(stderr, f)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d nodes did not answer (is the embedded registry mirror on, with --embedded-registry?)", len(failed), len(nodes))
	}
	return nil
}

func listNodes(ctx context.Context, kubeconfig string) ([]corev1.Node, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 30 * time.Second
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the nodes: %w", err)
	}
	return list.Items, nil
}

// askMirrors asks every node's mirror at once for its images; it returns
// them by image, sorted, and a line for each node that did not answer.
func askMirrors(ctx context.Context, mc *mirror.Client, nodes []corev1.Node) ([]heldImage, []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	byNode := map[string][]mirror.Image{}
	var failed []string
	for _, n := range nodes {
		wg.Go(func() {
			imgs, err := nodeImages(ctx, mc, n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("node %s: %v", n.Name, err))
				return
			}
			byNode[n.Name] = imgs
		})
	}
	wg.Wait()
	slices.Sort(failed)
	return heldBy(byNode), failed
}

// heldBy turns the images of each node into the nodes of each image (by
// name and digest), sorted.
func heldBy(byNode map[string][]mirror.Image) []heldImage {
	byKey := map[string]*heldImage{}
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		for _, img := range byNode[node] {
			key := img.Name + "@" + img.Digest.String()
			h := byKey[key]
			if h == nil {
				h = &heldImage{Name: img.Name, Digest: img.Digest.String()}
				byKey[key] = h
			}
			if img.Complete {
				h.Nodes = append(h.Nodes, node)
			} else {
				h.Partial = append(h.Partial, node)
			}
		}
	}
	held := make([]heldImage, 0, len(byKey))
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		held = append(held, *byKey[key])
	}
	return held
}

func nodeImages(ctx context.Context, mc *mirror.Client, n corev1.Node) ([]mirror.Image, error) {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			return mc.Images(ctx, net.JoinHostPort(a.Address, strconv.Itoa(mirror.Port)))
		}
	}
	return nil, fmt.Errorf("it has no InternalIP")
}

func printHeld(w io.Writer, held []heldImage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tNODES")
	for _, h := range held {
		nodes := strings.Join(h.Nodes, ",")
		for _, p := range h.Partial {
			nodes += "," + p + "(partial)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Name, shortDigest(h.Digest), strings.TrimPrefix(nodes, ","))
	}
	return tw.Flush()
}

// shortDigest is dgst cut to the length images are usually shown with.
func shortDigest(dgst string) string {
	if len(dgst) > len("sha256:")+12 {
		return dgst[:len("sha256:")+12]
	}
	return dgst
}
