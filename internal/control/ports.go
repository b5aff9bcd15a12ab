package control

// Fixed loopback ports of the control plane. The apiserver's port is
// configurable (--https-listen-port); these are not, like k3s.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
	CMPort         = 10257
	SchedulerPort  = 10259
)
