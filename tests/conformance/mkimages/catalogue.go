package main

// Parents an image can build on: nothing, or the shared Debian tree.
const (
	scratch = "scratch"
	debian  = "debian"
)

const e2eRegistry = "registry.k8s.io/e2e-test-images/"

// imageSpec is one image: its names, what it builds on (scratch, debian or
// the first name of an image listed before it), the files of its own layer
// and its config.
type imageSpec struct {
	names      []string
	from       string
	entries    []entry
	entrypoint []string
	cmd        []string
	user       string
	stopSignal string
}

// entry is one file of an image's layer. Exactly one of bin (a program in
// -bin), file (a path under -files), link (a symlink target), dir (an
// empty directory) or text is set. With extend, text is appended to that
// file of the Debian tree.
type entry struct {
	path   string
	mode   int64
	bin    string
	file   string
	link   string
	dir    bool
	text   string
	extend bool
}

// catalogue lists every image the [Conformance] specs of the pinned
// Kubernetes run (test/utils/image/manifest.go, cross-checked with the
// specs), each as the real image is built (test/images/*/Dockerfile), with
// the Debian tree in place of the upstream base.
func catalogue() []imageSpec {
	return []imageSpec{
		{
			// AgnhostPrev (2.55) is served by the pinned agnhost, a superset.
			names: []string{e2eRegistry + "agnhost:2.66.1", e2eRegistry + "agnhost:2.55"},
			from:  debian,
			entries: []entry{
				{path: "/agnhost", mode: 0o755, bin: "agnhost"},
				{path: "/agnhost-2", link: "agnhost"},
				{path: "/coredns", mode: 0o755, bin: "coredns"},
				{path: "/uploads", mode: 0o755, dir: true},
				{path: "/localhost.crt", mode: 0o644, file: "agnhost/porter/localhost.crt"},
				{path: "/localhost.key", mode: 0o644, file: "agnhost/porter/localhost.key"},
				// adduser -u 1000 user-defined-in-image; addgroup -g 50000 group-defined-in-image.
				{path: "/etc/passwd", mode: 0o644, extend: true,
					text: "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"},
				{path: "/etc/group", mode: 0o644, extend: true,
					text: "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"},
			},
			entrypoint: []string{"/agnhost"},
			cmd:        []string{"pause"},
		},
		{
			names: []string{e2eRegistry + "kitten:1.8"},
			from:  e2eRegistry + "agnhost:2.66.1",
			entries: []entry{
				{path: "/kitten.jpg", mode: 0o644, file: "kitten/html/kitten.jpg"},
				{path: "/data.json", mode: 0o644, file: "kitten/html/data.json"},
			},
			cmd: []string{"test-webserver"},
		},
		{
			names: []string{e2eRegistry + "nautilus:1.8"},
			from:  e2eRegistry + "agnhost:2.66.1",
			entries: []entry{
				{path: "/nautilus.jpg", mode: 0o644, file: "nautilus/html/nautilus.jpg"},
				{path: "/data.json", mode: 0o644, file: "nautilus/html/data.json"},
			},
			cmd: []string{"test-webserver"},
		},
		{names: []string{e2eRegistry + "busybox:1.37.0-2"}, from: debian, cmd: []string{"sh"}},
		{
			// Debian's nginx, serving its welcome page on port 80 (IPv4
			// only: a pod may have no IPv6), logging to the container's
			// output as the official image does.
			names: []string{e2eRegistry + "nginx:1.27.0-2", e2eRegistry + "nginx:1.28.0-2"},
			from:  debian,
			entries: []entry{
				{path: "/etc/nginx/sites-enabled/default", mode: 0o644, text: nginxSite},
				{path: "/var/log/nginx/access.log", link: "/dev/stdout"},
				{path: "/var/log/nginx/error.log", link: "/dev/stderr"},
			},
			cmd:        []string{"nginx", "-g", "daemon off;"},
			stopSignal: "SIGQUIT",
		},
		{
			names:   []string{e2eRegistry + "nonewprivs:1.4"},
			from:    debian,
			entries: []entry{{path: "/usr/local/bin/nnp", mode: 0o4755, bin: "nnp"}},
			cmd:     []string{"nnp"},
		},
		{names: []string{e2eRegistry + "nonroot:1.5"}, from: debian, user: "1234"},
		{
			names:      []string{e2eRegistry + "sample-apiserver:1.29.2"},
			from:       debian,
			entries:    []entry{{path: "/sample-apiserver", mode: 0o755, bin: "sample-apiserver"}},
			entrypoint: []string{"/sample-apiserver"},
		},
		{
			names:   []string{"registry.k8s.io/etcd:3.7.0-0"},
			from:    debian,
			entries: []entry{{path: "/usr/local/bin/etcd", mode: 0o755, bin: "etcd"}},
			cmd:     []string{"/usr/local/bin/etcd"},
		},
		{
			names:   []string{e2eRegistry + "glibc-dns-testing:2.1.1"},
			from:    debian,
			entries: []entry{{path: "/coredns", mode: 0o755, bin: "coredns"}},
			cmd:     []string{"bash"},
		},
		{
			names:      []string{"registry.k8s.io/pause:3.10.2"},
			from:       scratch,
			entries:    []entry{{path: "/pause", mode: 0o755, bin: "pause"}},
			entrypoint: []string{"/pause"},
		},
	}
}

const nginxSite = `server {
	listen 80 default_server;
	root /var/www/html;
	index index.html index.nginx-debian.html;
	server_name _;
	location / {
		try_files $uri $uri/ =404;
	}
}
`
