package main

// Parents an image can build on besides the images listed before it:
// nothing, the shared Debian tree, or that tree with upstream busybox as
// /bin/sh, for the images whose real base is Alpine.
const (
	scratch = "scratch"
	debian  = "debian"
	alpine  = "alpine-like"
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
	applets    string // a directory to link every busybox applet into
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
			from:  alpine,
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
		agnhostPage("kitten"),
		agnhostPage("nautilus"),
		{
			// Upstream busybox on nothing, as the real image: its ash keeps
			// variables like "data-1", its messages are the ones specs expect.
			names: []string{e2eRegistry + "busybox:1.37.0-2"},
			from:  scratch,
			entries: []entry{
				{path: "/bin/busybox", mode: 0o755, bin: "busybox"},
				{path: "/etc/passwd", mode: 0o644, text: busyboxPasswd},
				{path: "/etc/group", mode: 0o644, text: busyboxGroup},
				{path: "/tmp", mode: 0o1777, dir: true},
				{path: "/root", mode: 0o700, dir: true},
				{path: "/home", mode: 0o755, dir: true},
				{path: "/usr/sbin", mode: 0o755, dir: true},
				{path: "/var/spool/mail", mode: 0o755, dir: true},
				{path: "/var/www", mode: 0o755, dir: true},
			},
			applets: "/bin",
			cmd:     []string{"sh"},
		},
		{
			// Debian's nginx, serving its welcome page on port 80 (IPv4
			// only: a pod may have no IPv6), logging to the container's
			// output as the official image does.
			names: []string{e2eRegistry + "nginx:1.27.0-2", e2eRegistry + "nginx:1.28.0-2"},
			from:  alpine,
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
			from:    alpine,
			entries: []entry{{path: "/usr/local/bin/nnp", mode: 0o4755, bin: "nnp"}},
			cmd:     []string{"nnp"},
		},
		{names: []string{e2eRegistry + "nonroot:1.5"}, from: debian, user: "1234"},
		{
			names:      []string{e2eRegistry + "sample-apiserver:1.29.2"},
			from:       alpine,
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

// agnhostPage is the kitten or nautilus image: agnhost serving a picture
// and a data.json from test/images/NAME/html.
func agnhostPage(name string) imageSpec {
	return imageSpec{
		names: []string{e2eRegistry + name + ":1.8"},
		from:  e2eRegistry + "agnhost:2.66.1",
		entries: []entry{
			{path: "/" + name + ".jpg", mode: 0o644, file: name + "/html/" + name + ".jpg"},
			{path: "/data.json", mode: 0o644, file: name + "/html/data.json"},
		},
		cmd: []string{"test-webserver"},
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

// The accounts of the real busybox image.
const busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
