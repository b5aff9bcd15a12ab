package control

import (
	"net"
	"strconv"
)

// Fixed loopback ports of the control plane. The apiserver's port is
// configurable (--https-listen-port); these are not, like k3s. etcd's are
// in package etcd.
const (
	CMPort        = 10257
	SchedulerPort = 10259
)

// LocalAPIServer is where this server's own apiserver answers on
// loopback (host:port): its components, its node's balancer and the
// kubeconfigs of what runs beside it use it.
func LocalAPIServer(httpsPort int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))
}
