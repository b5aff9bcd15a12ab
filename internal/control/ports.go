package control

// Fixed loopback ports of the control plane. The apiserver's port is
// configurable (--https-listen-port); these are not, like k3s. etcd's are
// in package etcd.
const (
	CMPort        = 10257
	SchedulerPort = 10259
)
